"""Batch loading for the sender: a claimed batch costs a few queries, not three per message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update

try:  # tests/ may or may not be a package; the helpers import either way
    from helpers.smtp_server import SmtpServer
except ModuleNotFoundError:
    from tests.helpers.smtp_server import SmtpServer

from mailer.config import Settings
from mailer.context import make_context
from mailer.db.digests import (
    PaperCache,
    PlannedDigest,
    insert_digests,
    load_digest,
    load_digests,
)
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow, PaperRow, SubscriberRow
from mailer.delivery import RetryPolicy, SmtpConfig, SmtpTransport
from mailer.models import DigestStatus, Match, Paper, Period, Span
from mailer.pipeline.send import send_queued

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
PAPERS = 6


def _seed(sessions: SessionFactory, count: int) -> list[int]:
    """``count`` subscribers, each with a due digest listing three of six papers."""
    with sessions.begin() as session:
        paper_ids = session.scalars(
            insert(PaperRow).returning(PaperRow.id, sort_by_parameter_order=True),
            [_paper(i) for i in range(PAPERS)],
        ).all()
        sids = session.scalars(
            insert(SubscriberRow).returning(SubscriberRow.id, sort_by_parameter_order=True),
            [_subscriber(i) for i in range(count)],
        ).all()
        plans = [
            _digest(sid, [paper_ids[(i + rank) % PAPERS] for rank in (1, 2, 3)])
            for i, sid in enumerate(sids)
        ]
        insert_digests(session, plans, T0)
        dids = session.scalars(select(DigestRow.id).order_by(DigestRow.subscriber_id)).all()
    return list(dids)


def _paper(i: int) -> dict[str, Any]:
    return {
        "key": f"arxiv:2611.{i:05d}",
        "arxiv_id": f"2611.{i:05d}",
        "title": f"Paper number {i} on diffusion",
        "abstract": "We study diffusion policies for robots.",
        "authors": ["Ada Lovelace", "Alan Turing"],
        "categories": ["cs.LG"],
        "keywords": [],
        "sources": ["file"],
        "url": f"https://arxiv.org/abs/2611.{i:05d}",
        "first_seen_at": T0,
        "updated_at": T0,
    }


def _subscriber(i: int) -> dict[str, Any]:
    return {
        "email": f"reader{i:03d}@example.net",
        "status": "active",
        "profile": "diffusion",
        "frequency": "daily",
        "send_time": "08:00",
        "timezone": "UTC",
        "weekday": 0,
        "created_at": T0,
        "confirmed_at": T0,
        "hard_bounces": 0,
        "soft_bounces": 0,
    }


def _digest(sid: int, paper_ids: list[int]) -> PlannedDigest:
    """A due digest listing ``paper_ids`` in that order, explained from the subscriber's profile."""
    return PlannedDigest(
        subscriber_id=sid,
        period=Period.parse("2026-11-22"),
        status=DigestStatus.PENDING,
        note=None,
        message_id=f"<batch-{sid}@example.org>",
        matches=tuple(
            Match(Paper(key=f"arxiv:{pid}", title="", id=pid), 1.0 / rank, ())
            for rank, pid in enumerate(paper_ids, start=1)
        ),
        matched_count=4,
        considered_count=50,
        window_start=None,
        window_end=T0,
    )


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine runs while the test does."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    yield seen
    event.remove(engine, "before_cursor_execute", note)


def test_load_digests_reads_many_rows_in_three_queries(
    session_factory: SessionFactory, statements: list[str]
) -> None:
    ids = _seed(session_factory, 30)
    statements.clear()
    with session_factory() as session:
        loaded = load_digests(session, [*ids, 999_999])
    assert len(statements) == 3  # digests+subscribers, listed rows, papers
    assert sorted(loaded) == sorted(ids)  # an unknown id is simply absent
    first = loaded[ids[0]]
    assert first.subscriber.email == "reader000@example.net"
    assert first.message_id == f"<batch-{first.subscriber.id}@example.org>"
    assert [m.score for m in first.matches] == [1.0, 0.5, 1 / 3]  # rank order
    assert [m.paper.title for m in first.matches] == [
        "Paper number 1 on diffusion",
        "Paper number 2 on diffusion",
        "Paper number 3 on diffusion",
    ]
    # Re-matched against the planned profile "diffusion": the title's word and the abstract's.
    assert set(first.matches[0].spans) == {Span("title", 18, 27), Span("abstract", 9, 18)}
    assert first.matches[0].interests == ("diffusion",)
    # Each paper is converted once, whichever digests list it.
    papers = {id(m.paper) for stored in loaded.values() for m in stored.matches}
    assert len(papers) == PAPERS


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_paper_cache_reads_each_paper_once_per_run_and_again_once_stale(
    session_factory: SessionFactory, statements: list[str]
) -> None:
    ids = _seed(session_factory, 12)
    clock = _Clock()
    cache = PaperCache(ttl=60.0, clock=clock)
    with session_factory() as session:
        first = load_digests(session, ids[:6], cache)
        statements.clear()
        second = load_digests(session, ids[6:], cache)
    assert len(statements) == 2  # digests+subscribers and listed rows: no paper query
    shared = {id(m.paper) for stored in (*first.values(), *second.values()) for m in stored.matches}
    assert len(shared) == PAPERS  # the later batch reuses the papers the first one read
    with session_factory.begin() as session:
        session.execute(update(PaperRow).values(upvotes=99))
    with session_factory() as session:
        cached = load_digests(session, ids[:1], cache)[ids[0]]
        clock.now = 61.0  # past the ttl: read again, with the new upvotes
        fresh = load_digests(session, ids[:1], cache)[ids[0]]
        uncached = load_digests(session, ids[:1])[ids[0]]
    assert {m.paper.upvotes for m in cached.matches} != {99}
    assert {m.paper.upvotes for m in fresh.matches} == {99}
    assert fresh == uncached


def test_a_paper_cache_over_its_limit_starts_afresh(session_factory: SessionFactory) -> None:
    ids = _seed(session_factory, 6)
    cache = PaperCache(limit=4)
    with session_factory() as session:
        loaded = load_digests(session, ids, cache)
    assert len(cache._papers) <= 4
    with session_factory() as session:
        assert load_digests(session, ids, cache) == loaded


def test_load_digest_alone_matches_the_batch(session_factory: SessionFactory) -> None:
    ids = _seed(session_factory, 3)
    with session_factory() as session:
        batch = load_digests(session, ids)
        assert [load_digest(session, i) for i in ids] == [batch[i] for i in ids]
        assert load_digest(session, 999_999) is None


def test_send_queued_loads_each_claimed_batch_at_once(
    db_url: str, session_factory: SessionFactory, statements: list[str]
) -> None:
    _seed(session_factory, 25)
    settings = Settings(
        database_url=db_url,
        secret_key="batch-test-secret-key-0123456789abcdef",
        MAILER_FROM="Paper Digest <digest@example.org>",
    )
    ctx = make_context(settings, session_factory, clock=lambda: T0)
    statements.clear()
    with SmtpServer() as server:
        config = SmtpConfig(server.host, server.port, security="none", concurrency=4, timeout=5)

        async def go() -> int:
            async with SmtpTransport(config) as transport:
                report = await send_queued(ctx, transport, RetryPolicy())
            return report.sent

        assert asyncio.run(go()) == 25
        received = {r.rcpt_tos[0]: r.message for r in server.messages}
    assert len(received) == 25
    message = received["reader007@example.net"]
    text = message.get_body(("plain",))
    assert text is not None
    assert "Paper number 2 on diffusion" in text.get_content()  # reader 7 lists papers 2-4
    assert "Paper number 5 on diffusion" not in text.get_content()
    assert message["Message-ID"].startswith("<batch-")
    listed_reads = [s for s in statements if "FROM digest_profile" in s]
    assert len(listed_reads) == 1  # one batch of 25 (the default batch is 100), not 25 reads
