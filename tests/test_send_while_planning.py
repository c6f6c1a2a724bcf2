"""``send_now`` sends while the planner is still planning: a real SMTP server, a real database.

The planner commits a chunk of subscribers at a time (two here, so that six subscribers make
three chunks); the test's feed holds the planner inside its first announced commit until the
sink has accepted a message, so "the first message left before planning ended" is decided by
the order of events, not by timing.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

try:  # tests/ may or may not be a package; the helpers import either way
    from helpers.smtp_server import SmtpServer
except ModuleNotFoundError:
    from tests.helpers.smtp_server import SmtpServer

from mailer.config import Settings
from mailer.context import Context, Defaults, make_context
from mailer.db import papers as paper_repo
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow
from mailer.delivery import DeliveryReport, OutboxFeed, RetryPolicy, SmtpConfig, SmtpTransport
from mailer.models import DigestStatus, Paper
from mailer.pipeline import plan as plan_module
from mailer.pipeline.cycle import send_now
from mailer.pipeline.plan import PlanReport
from mailer.subscribers.manage import SubscriberInput, add

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
READERS = [f"reader{i}@example.org" for i in range(6)]
WAIT = 60.0  # seconds a hook waits for the other side before the test fails (never a pass)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def ctx(db_url: str, session_factory: SessionFactory, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setattr(plan_module, "CHUNK", 2)  # six subscribers, three committed chunks
    with session_factory.begin() as session:
        paper = Paper(key="a", title="Diffusion policy for robots", abstract="", source="test")
        paper_repo.upsert_papers(session, [paper], T0 - timedelta(hours=1))
    for email in READERS:
        raw = SubscriberInput(email, "diffusion", send_time="08:00", timezone="UTC")
        add(session_factory, raw, confirmed=True, defaults=Defaults(), now=T0 - timedelta(hours=2))
    settings = Settings(
        database_url=db_url,
        secret_key="send-while-planning-secret-0123456789ab",
        MAILER_FROM="Paper Digest <digest@example.org>",
    )
    return make_context(settings, session_factory, clock=lambda: T0)


def _send(
    ctx: Context, server: SmtpServer, feed: OutboxFeed, stop: asyncio.Event | None = None
) -> tuple[PlanReport, DeliveryReport]:
    config = SmtpConfig(server.host, server.port, security="none", concurrency=2, timeout=5)

    async def go() -> tuple[PlanReport, DeliveryReport]:
        async with SmtpTransport(config) as transport:
            return await send_now(ctx, transport, RetryPolicy(), force=True, stop=stop, feed=feed)

    return asyncio.run(go())


def _statuses(sessions: SessionFactory) -> Counter[str]:
    with sessions() as session:
        query = select(DigestRow.status, func.count()).group_by(DigestRow.status)
        return Counter({row[0]: row[1] for row in session.execute(query)})


def _recipients(server: SmtpServer) -> Counter[str]:
    return Counter(r for m in server.messages for r in m.rcpt_tos)


class HoldAfterFirstChunk(OutboxFeed):
    """Keeps the planner in its first announced commit until the sink accepted a message."""

    def __init__(self, server: SmtpServer) -> None:
        super().__init__()
        self.server = server
        self.accepted_while_planning: bool | None = None

    def added(self) -> None:
        super().added()
        if self.generation == 1:
            self.accepted_while_planning = self.server.wait_for(1, timeout=WAIT)


def test_the_first_message_leaves_before_planning_ends(
    ctx: Context, smtp: SmtpServer, session_factory: SessionFactory
) -> None:
    feed = HoldAfterFirstChunk(smtp)
    planned, delivered = _send(ctx, smtp, feed)
    # Had the sender waited for the whole plan, the planner would have waited in vain.
    assert feed.accepted_while_planning is True
    assert feed.generation == 3  # and planning went on to its last chunk
    assert (planned.queued, delivered.sent) == (6, 6)
    assert _recipients(smtp) == Counter(READERS)  # everyone once, nobody twice
    assert _statuses(session_factory) == Counter({DigestStatus.SENT.value: 6})


class StopAfterFirstChunk(OutboxFeed):
    """Sets the run's stop event (as SIGTERM does) once the first chunk is committed."""

    def __init__(self) -> None:
        super().__init__()
        self.stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.asked_to_halt = False

    def added(self) -> None:
        super().added()
        if self.generation == 1:
            assert self.loop is not None and self.stop is not None
            self.loop.call_soon_threadsafe(self.stop.set)
            # Hold the planner until the stop reached it, so no second chunk starts first.
            for _ in range(int(WAIT * 100)):
                if self.halted():
                    break
                time.sleep(0.01)
            self.asked_to_halt = self.halted()


def test_a_stop_mid_plan_keeps_what_was_planned_for_the_next_run(
    ctx: Context, smtp: SmtpServer, session_factory: SessionFactory
) -> None:
    feed = StopAfterFirstChunk()
    config = SmtpConfig(smtp.host, smtp.port, security="none", concurrency=2, timeout=5)

    async def go() -> tuple[PlanReport, DeliveryReport]:
        feed.stop, feed.loop = asyncio.Event(), asyncio.get_running_loop()
        async with SmtpTransport(config) as transport:
            return await send_now(
                ctx, transport, RetryPolicy(), force=True, stop=feed.stop, feed=feed
            )

    planned, delivered = asyncio.run(go())
    assert feed.asked_to_halt
    assert planned.queued == 2  # the first chunk only: the planner stopped after it
    statuses = _statuses(session_factory)
    assert statuses.total() == 2 and DigestStatus.SENDING.value not in statuses
    assert delivered.sent == statuses[DigestStatus.SENT.value] == smtp.count

    # The next run plans the other four and sends whatever the first left: each reader once.
    planned, delivered = _send(ctx, smtp, OutboxFeed())
    assert planned.queued == 4
    assert _recipients(smtp) == Counter(READERS)
    assert _statuses(session_factory) == Counter({DigestStatus.SENT.value: 6})


class FailOnSecondChunk(OutboxFeed):
    """The planner breaks after committing its second chunk (a bug, a lost database)."""

    def added(self) -> None:
        super().added()
        if self.generation == 2:
            raise RuntimeError("planner broke")


def test_a_planner_error_is_raised_after_sending_what_it_committed(
    ctx: Context, smtp: SmtpServer, session_factory: SessionFactory
) -> None:
    with pytest.raises(RuntimeError, match="planner broke"):
        _send(ctx, smtp, FailOnSecondChunk())
    assert smtp.count == 4 and len(_recipients(smtp)) == 4  # two chunks, each reader once
    assert _statuses(session_factory) == Counter({DigestStatus.SENT.value: 4})
