"""Render processes: large claimed batches are rendered in children, with the same emails."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import re
import subprocess
import sys
import time
from collections.abc import Awaitable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, message_from_string
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from mailer.config import Settings
from mailer.context import Context, make_context
from mailer.db.outbox import claim
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow
from mailer.delivery import RetryPolicy, SmtpConfig, SmtpTransport, WireMessage
from mailer.pipeline.render import RenderedDigest, render_stored, wire_message
from mailer.pipeline.render_pool import Rendered, RenderPool
from mailer.pipeline.send import DigestMessages, PooledDigestMessages, digest_messages, send_queued
from mailer.tokens import Purpose
from tests.helpers.golden import sample_digest
from tests.helpers.smtp_server import SmtpServer
from tests.test_delivery_batch import _seed

SECRET = "render-pool-test-secret-0123456789abcdef"


def _settings(db_url: str, processes: int = 1) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key=SECRET,
        render_processes=processes,
        MAILER_FROM="Paper Digest <digest@example.org>",
    )


def _due_now(sessions: SessionFactory) -> None:
    """The seeded rows are due at a fixed instant; the real clock must find them due."""
    with sessions.begin() as session:
        session.execute(
            update(DigestRow).values(next_attempt_at=datetime.now(UTC) - timedelta(minutes=1))
        )


class _FlagRecordingTransport(SmtpTransport):
    """An SMTP transport that notes whether each message came with its line ends checked."""

    def __init__(self, config: SmtpConfig) -> None:
        super().__init__(config)
        self.crlf_checked: list[bool] = []

    async def send(self, message: Any, recipient: str) -> str | None:
        self.crlf_checked.append(getattr(message, "crlf_checked", False))
        return await super().send(message, recipient)


def _send(
    ctx: Context,
    server: SmtpServer,
    messages: DigestMessages,
    flags: list[bool] | None = None,
) -> int:
    config = SmtpConfig(server.host, server.port, security="none", concurrency=4, timeout=10)

    async def go() -> int:
        async with _FlagRecordingTransport(config) as transport:
            if flags is not None:
                transport.crlf_checked = flags
            report = await send_queued(ctx, transport, RetryPolicy(), messages=messages)
        return report.sent

    return asyncio.run(go())


_LINK = re.compile(r"/(unsubscribe|preferences|digest|feed|feedback|rate)/([A-Za-z0-9_.-]+)")


def _comparable(ctx: Context, message: EmailMessage) -> dict[str, Any]:
    """Headers and decoded parts, minus what differs between two renderings.

    The Date, the MIME boundary and the time inside link tokens differ; each token must
    still read back as the same subscriber or digest under this process's key.
    """

    def link(match: re.Match[str]) -> str:
        purpose = Purpose(match.group(1))
        return f"/{purpose.value}/<{ctx.tokens.read(purpose, match.group(2))}>"

    headers = [(k, _LINK.sub(link, str(v))) for k, v in message.items()]
    headers = [(k, v) for k, v in headers if k not in ("Date", "Content-Type")]
    parts = [(p.get_content_type(), _LINK.sub(link, p.get_content())) for p in message.iter_parts()]
    return {"headers": headers, "parts": parts}


def _pooled(
    db_url: str, sessions: SessionFactory, count: int
) -> tuple[list[int], Context, PooledDigestMessages]:
    """``count`` due digests and a pooled message builder, as a sending run makes it."""
    ids = _seed(sessions, count)
    _due_now(sessions)
    ctx = make_context(_settings(db_url), sessions)
    messages = digest_messages(ctx)
    assert isinstance(messages, PooledDigestMessages)
    return ids, ctx, messages


def test_a_large_batch_is_rendered_by_a_child_into_the_same_emails(
    db_url: str, session_factory: SessionFactory
) -> None:
    ids, ctx, messages = _pooled(db_url, session_factory, 60)
    assert messages.pool.wait_ready(timeout=60)  # a warm pool takes every large batch
    flags: list[bool] = []
    with SmtpServer() as server:
        assert _send(ctx, server, messages, flags) == 60
        received = {r.message_id: r for r in server.messages}
    assert messages.pool.submitted == 60  # every row went through a render process
    # The children knew (or checked) the line ends, so the sender did not scan them again.
    assert flags == [True] * 60
    assert len(received) == 60  # each digest exactly once
    for digest_id in (ids[0], ids[37]):
        here = wire_message(ctx, render_stored(ctx, digest_id))
        from_here = message_from_bytes(here.data, policy=default)
        assert isinstance(from_here, EmailMessage)
        from_child = received[str(from_here["Message-ID"])].message
        assert _comparable(ctx, from_child) == _comparable(ctx, from_here)


def test_a_chunk_already_rendered_is_used_at_once_and_a_failed_one_renders_here(
    db_url: str, session_factory: SessionFactory
) -> None:
    _, ctx, messages = _pooled(db_url, session_factory, 3)
    with session_factory() as session:
        now = datetime.now(UTC)
        first, *others = claim(session, now, now + timedelta(minutes=5), 3).digests
    done: Future[dict[int, Rendered]] = Future()
    done.set_result({first.digest_id: Rendered(b"From: x\r\n\r\nbody\r\n", crlf_checked=True)})
    failed: Future[dict[int, Rendered]] = Future()
    failed.set_exception(RuntimeError("the render process died"))
    cancelled: Future[dict[int, Rendered]] = Future()
    cancelled.cancel()  # as a pool shut down under the run leaves it
    messages._pending[first.digest_id] = done
    messages._pending.update(zip([d.digest_id for d in others], [failed, cancelled], strict=True))

    ready = messages(first)  # no coroutine, no waiting: the chunk is there
    assert ready == WireMessage(b"From: x\r\n\r\nbody\r\n", ctx.envelope_sender, True)
    for digest in others:
        later = messages(digest)
        assert inspect.isawaitable(later)
        rendered_here = asyncio.run(_awaited(later))
        assert digest.message_id.encode() in rendered_here.data


async def _awaited(value: Awaitable[WireMessage]) -> WireMessage:
    return await value


def test_small_batches_render_in_the_sending_process(
    db_url: str, session_factory: SessionFactory
) -> None:
    _, ctx, messages = _pooled(db_url, session_factory, 10)
    with SmtpServer() as server:
        assert _send(ctx, server, messages) == 10
    assert messages.pool.submitted == 0  # starting a process would cost more than it saves


def test_a_batch_claimed_while_the_children_start_renders_here(
    db_url: str, session_factory: SessionFactory
) -> None:
    _, ctx, messages = _pooled(db_url, session_factory, 60)
    with SmtpServer() as server:
        assert _send(ctx, server, messages) == 60  # one batch, claimed before any child was up
    assert messages.pool.submitted == 0  # the first messages did not wait for a child


def test_an_injected_clock_or_zero_processes_render_here(
    db_url: str, session_factory: SessionFactory
) -> None:
    fixed = make_context(_settings(db_url), session_factory, clock=lambda: datetime.now(UTC))
    assert not isinstance(digest_messages(fixed), PooledDigestMessages)
    none = make_context(_settings(db_url, processes=0), session_factory)
    assert not isinstance(digest_messages(none), PooledDigestMessages)


class _DyingPool(RenderPool):
    """Kills its render process right after taking the first chunk."""

    def submit(self, digest_ids: Any) -> Future[dict[int, Rendered]]:
        future = super().submit(digest_ids)
        executor: Any = self._executor
        for process in list(executor._processes.values()):
            process.kill()
        return future


def test_a_render_process_that_dies_costs_no_digest(
    db_url: str, session_factory: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    _seed(session_factory, 60)
    _due_now(session_factory)
    settings = _settings(db_url)
    ctx = make_context(settings, session_factory)
    messages = PooledDigestMessages(ctx, _DyingPool(settings, 1))
    assert messages.pool.wait_ready(timeout=60)
    with SmtpServer() as server:
        assert _send(ctx, server, messages) == 60
        ids = [r.message_id for r in server.messages]
    assert len(ids) == len(set(ids)) == 60  # all rendered here instead, each sent once
    fallbacks = [r.getMessage() for r in caplog.records if r.name == "mailer.pipeline.send"]
    assert any("render process failed" in m or "unavailable" in m for m in fallbacks)


def test_a_non_ascii_address_gets_utf8_headers_not_encoded_words(
    db_url: str, session_factory: SessionFactory
) -> None:
    digest, links = sample_digest()
    subscriber = dataclasses.replace(digest.subscriber, email="jorg@exämple.net")
    digest = dataclasses.replace(digest, subscriber=subscriber, message_id="<idn@example.org>")
    ctx = make_context(_settings(db_url), session_factory)
    rendered = ctx.renderer.digest(digest, links, date_label="Sun 22 Nov 2026")
    wire = wire_message(ctx, RenderedDigest(digest, links, rendered))
    head = wire.data.split(b"\r\n\r\n", 1)[0]
    assert "\r\nTo: jorg@exämple.net\r\n".encode() in head  # RFC 6532, sent with SMTPUTF8
    assert b"=?utf-8?" not in head.split(b"\r\nTo:", 1)[1].split(b"\r\n", 1)[0]
    back = message_from_string(wire.data.decode("utf-8"), policy=default)
    assert back["To"].addresses[0].domain == "exämple.net"


def test_render_processes_exit_when_their_parent_is_killed(
    db_url: str, session_factory: SessionFactory, tmp_path: Path
) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from mailer.config import Settings\n"
        "from mailer.pipeline.render_pool import RenderPool\n"
        "if __name__ == '__main__':\n"
        f"    settings = Settings(database_url={db_url!r}, secret_key={SECRET!r},\n"
        "                        MAILER_FROM='Digest <d@example.org>')\n"
        "    RenderPool(settings, 1).submit([1]).result()\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        children = _children_of(parent.pid)
        assert children, "the pool started no process"
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in children):
            assert time.monotonic() < deadline, "a render process outlived its parent"
            time.sleep(0.1)
    finally:
        if parent.poll() is None:
            parent.kill()


def _children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
