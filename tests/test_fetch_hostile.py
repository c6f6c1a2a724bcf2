"""The fetch stage against hostile sources, on SQLite and PostgreSQL (issue 21, points 1, 2, 5).

One source's failure never stops another; every attempt writes its fetch record with the
reason, so ``why``, ``stats`` and ``/healthz`` tell the truth; a failure is one log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from mailer.config import Settings
from mailer.context import Context, make_context
from mailer.db.session import SessionFactory
from mailer.db.tables import FetchRunRow, PaperRow, SourceStateRow
from mailer.models import FetchOutcome
from mailer.pipeline.fetch import fetch_all
from mailer.sources import FetchResult, Validators
from tests.helpers import hostile
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)
from tests.helpers.http_server import Canned, LocalHTTPServer

DAY = "2025-08-06"
NOW = datetime(2025, 8, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    path.write_text('{"title": "A good paper about robots", "arxiv_id": "2508.09999"}\n')
    return path


def runs(session_factory: SessionFactory) -> dict[str, FetchRunRow]:
    """The latest fetch record of each source."""
    with session_factory() as session:
        rows = session.scalars(select(FetchRunRow).order_by(FetchRunRow.id)).all()
    return {row.source: row for row in rows}


def keys(session_factory: SessionFactory) -> set[str]:
    with session_factory() as session:
        return set(session.scalars(select(PaperRow.key)))


def test_one_hostile_item_costs_that_item_only(
    cli: Invoke, server: LocalHTTPServer, good_file: Path, session_factory: SessionFactory
) -> None:
    """Issue 21.1: one item with upvotes 10**40 made `mailer fetch` exit 1 with an
    OverflowError; the good file's paper was not stored and no fetch record was written. On
    PostgreSQL a NUL in a title did the same."""
    items = json.loads(hostile.huge_int_items()) + json.loads(hostile.nul_and_controls())
    server.route("/api", Canned.json(items))
    env = {"MAILER_SOURCES": f"hf-daily,file:{good_file}", "MAILER_HF_API_URL": server.url("/api")}
    result = cli("fetch", "--date", DAY, env=env)
    assert result.code == 0, result
    assert keys(session_factory) == {"2508.00001", "2508.00011", "2508.00012", "2508.09999"}
    records = runs(session_factory)
    hf, local = records["hf-daily"], records[f"file:{good_file}"]
    assert (hf.outcome, hf.new, hf.skipped) == ("ok", 3, 2)
    assert (local.outcome, local.new) == ("ok", 1)
    assert "skipped in hf-daily: item 2: upvotes of about 40 digits is out of range" in result.err
    with session_factory() as session:
        titles = set(session.scalars(select(PaperRow.title)))
    assert {"Robots and control", "Lone surrogate"} <= titles


def test_every_failing_source_is_recorded_and_the_rest_are_stored(
    cli: Invoke, server: LocalHTTPServer, good_file: Path, session_factory: SessionFactory
) -> None:
    """Issue 21.1 and 21.2: a redirect loop, a bad gzip body, JSON nested 200,000 deep and a
    gzip bomb each aborted every source's fetch without a record; now each is one source's
    recorded error."""
    server.route("/loop", hostile.redirect_loop("/loop"))
    server.route("/gzip", hostile.bad_gzip_answer())
    server.route("/deep", Canned(hostile.deep_json(), content_type="application/json"))
    server.route("/bomb", hostile.bomb_answer(size=64 * 1024 * 1024))
    big = Canned(content_type="application/rss+xml", chunks=lambda: hostile.zeros(64 * 2**20))
    server.route("/big", big)
    feeds = {name: f"rss:{server.url('/' + name)}" for name in ("loop", "gzip", "bomb", "big")}
    env = {
        "MAILER_SOURCES": ",".join([*feeds.values(), "hf-daily", f"file:{good_file}"]),
        "MAILER_HF_API_URL": server.url("/deep"),
        "MAILER_FETCH_MAX_BYTES": str(4 * 1024 * 1024),
    }
    result = cli("fetch", "--date", DAY, env=env)
    assert result.code == 0, result  # not every source failed
    records = runs(session_factory)
    assert {name: row.outcome for name, row in records.items()} == {
        **dict.fromkeys(feeds.values(), "error"),
        "hf-daily": "error",
        f"file:{good_file}": "ok",
    }
    assert "redirect loop" in (records[feeds["loop"]].error or "")
    assert "compressed response" in (records[feeds["gzip"]].error or "")
    assert "inflates more than 200-fold" in (records[feeds["bomb"]].error or "")
    assert "over the 4.0 MiB limit" in (records[feeds["big"]].error or "")
    assert "nested too deeply" in (records["hf-daily"].error or "")
    assert keys(session_factory) == {"2508.09999"}
    with session_factory() as session:
        states = {s.name: s for s in session.scalars(select(SourceStateRow))}
    assert states["hf-daily"].last_error and states["hf-daily"].last_attempt_at
    stats = cli("stats", "--json", env=env)
    errors = {s["source"]: s["last_error"] for s in json.loads(stats.out)["sources"]}
    assert "nested too deeply" in errors["hf-daily"] and errors[f"file:{good_file}"] is None


def test_a_drip_ends_at_the_deadline_and_the_record_says_so(
    cli: Invoke, server: LocalHTTPServer, good_file: Path, session_factory: SessionFactory
) -> None:
    """Issue 21.2: a byte a second kept a fetch alive 41.9 s with MAILER_HTTP_TIMEOUT=5, and
    every later source waited."""
    server.route("/api", hostile.drip_answer(hostile.hf_json(hostile.hf_item("2508.00061")), 0.2))
    env = {
        "MAILER_SOURCES": f"hf-daily,file:{good_file}",
        "MAILER_HF_API_URL": server.url("/api"),
        "MAILER_HTTP_TIMEOUT": "5",
        "MAILER_HTTP_DEADLINE": "1",
    }
    result = cli("fetch", "--date", DAY, env=env)
    assert result.code == 0, result
    hf = runs(session_factory)["hf-daily"]
    assert hf.outcome == "error"
    assert hf.error is not None and "within the 1 s deadline (MAILER_HTTP_DEADLINE" in hf.error
    assert "2508.09999" in keys(session_factory)  # the later source still ran


def test_feed_credentials_never_reach_the_store_the_logs_or_the_output(
    cli: Invoke, server: LocalHTTPServer, session_factory: SessionFactory
) -> None:
    """Issue 21.5: rss:http://user:token@host/feed put the token into log lines."""
    server.route("/feed", Canned(status=500))
    url = server.url("/feed").replace("http://", "http://reader:s3cret-t0ken@") + "?key=k3y"
    result = cli("fetch", env={"MAILER_SOURCES": f"rss:{url}", "MAILER_HTTP_TIMEOUT": "2"})
    assert result.code == 1  # the only source failed
    for text in (result.out, result.err):
        assert "s3cret-t0ken" not in text and "k3y" not in text
    assert "reader:***@" in result.out
    ((name, row),) = runs(session_factory).items()
    assert "s3cret" not in name + (row.error or "") and "k3y" not in name + (row.error or "")


class _BrokenSource:
    """A source whose code has a bug: the pipeline must record it and carry on."""

    kind = "file"
    name = "file:/broken.jsonl"

    async def fetch(
        self, client: httpx.AsyncClient, validators: Validators, day: date
    ) -> FetchResult:
        raise RuntimeError("a bug nobody foresaw")

    async def fetch_since(
        self, client: httpx.AsyncClient, validators: Validators, day: date, since: date | None
    ) -> AsyncIterator[FetchResult]:
        yield await self.fetch(client, validators, day)


def test_an_unexpected_failure_is_one_log_line_and_a_record(
    session_factory: SessionFactory,
    good_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 21.1: the worker logged a scheduler traceback every tick and recorded nothing."""
    from mailer.pipeline.fetch import make_sources

    settings = Settings(secret_key="fetch-hostile-test-key-0123456789abcdef")
    ctx: Context = make_context(settings, session_factory, clock=lambda: NOW)
    sources = [_BrokenSource(), *make_sources(settings, [f"file:{good_file}"])]

    async def go() -> list[FetchOutcome]:
        async with httpx.AsyncClient() as client:
            return [o.outcome for o in await fetch_all(ctx, sources, client, NOW.date())]

    caplog.set_level(logging.INFO, logger="mailer")
    assert asyncio.run(go()) == [FetchOutcome.ERROR, FetchOutcome.OK]
    broken = runs(session_factory)["file:/broken.jsonl"]
    assert broken.outcome == "error"
    assert broken.error == "file:/broken.jsonl: internal error (RuntimeError: a bug nobody foresaw)"
    failures = [r for r in caplog.records if "fetch failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is None


def _huge_items(count: int) -> bytes:
    """``count`` items, each with a 200 KB title, a 700 KB abstract and 5,000 authors."""
    return hostile.hf_json(
        *(
            hostile.hf_item(
                f"2508.{30000 + i}",
                f"Robots {i} " + "robots grasping " * 12_500,
                summary="robots " * 100_000,
                authors=[{"name": f"Author {n}"} for n in range(5000)],
            )
            for i in range(count)
        )
    )


def test_huge_fields_cannot_swell_previews_or_emails(
    cli: Invoke, server: LocalHTTPServer, session_factory: SessionFactory, tmp_path: Path
) -> None:
    """Issue 21.2: a 5.6 MB title made /preview?q=robots answer 16 MB and `mailer preview`
    write a 40 MB email (the promise is below Gmail's 102 KB)."""
    server.route("/api", Canned(_huge_items(12), content_type="application/json"))
    env = {"MAILER_SOURCES": "hf-daily", "MAILER_HF_API_URL": server.url("/api")}
    assert cli("fetch", "--date", DAY, env=env).code == 0
    with session_factory() as session:
        stored = session.scalars(select(PaperRow)).all()
    assert len(stored) == 12
    assert max(len(p.title) for p in stored) <= 500 and max(len(p.abstract) for p in stored) <= 5000
    assert max(len(p.authors) for p in stored) == 200
    added = cli("subscribers", "add", "reader@example.org", "--keywords", "robots", "--confirmed")
    assert added.code == 0, added
    out = tmp_path / "preview.html"
    assert cli("preview", "reader@example.org", "--out", str(out)).code == 0
    assert out.stat().st_size < 102 * 1024, out.stat().st_size
    from mailer.web.app import create_app
    from tests.helpers.web_server import WebServer

    settings = Settings(secret_key="fetch-hostile-test-key-0123456789abcdef")
    ctx = make_context(settings, session_factory)
    with WebServer(create_app(ctx)) as web:
        page = httpx.get(web.url("/preview"), params={"q": "robots"}, timeout=30)
    assert page.status_code == 200 and "<strong>12</strong> of the 12 papers" in page.text
    assert len(page.content) < 200 * 1024, len(page.content)


def test_run_once_still_sends_when_sources_are_hostile(
    cli: Invoke, server: LocalHTTPServer, good_file: Path, tmp_path: Path
) -> None:
    """Issue 21.1: one bad source made `run --once` stop before sending anything."""
    server.route("/loop", hostile.redirect_loop("/loop"))
    server.route("/deep", Canned(hostile.deep_json(), content_type="application/json"))
    outbox = tmp_path / "outbox"
    env = {
        "MAILER_SOURCES": f"rss:{server.url('/loop')},hf-daily,file:{good_file}",
        "MAILER_HF_API_URL": server.url("/deep"),
        "MAILER_OUTBOX_DIR": str(outbox),
    }
    added = cli("subscribers", "add", "reader@example.org", "--keywords", "robots",
                "--confirmed", "--send-time", "00:00", env=env)  # fmt: skip
    assert added.code == 0, added
    result = cli("run", "--once", env=env)
    assert result.code == 0, result
    (mail,) = (outbox / "new").iterdir()
    assert "A good paper about robots" in mail.read_text(encoding="utf-8")


def test_a_worker_with_an_unusable_source_does_not_start(cli: Invoke) -> None:
    """Issue 21.1 and 21.3: a bad source made the worker log a scheduler error every tick."""
    result = cli("worker", env={"MAILER_SOURCES": "hf-daily,file:/etc/passwd"})
    assert result.code == 3, result
    assert (
        result.err.strip()
        .splitlines()[-1]
        .startswith("error: configuration error: MAILER_SOURCES: source 'file:/etc/passwd' refused")
    )
