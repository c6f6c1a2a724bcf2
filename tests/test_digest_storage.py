"""Compact digest storage: a stored digest loads back as planned, and retention prunes it.

A digest stores its papers' ids and scores and the profile text it was planned with; why each
paper matched is re-matched on load. These tests plan with the real planner over the bundled
sample papers and compare what loads with what was planned, render a retry after a profile
edit, convert old rows through migration 0008 both ways, and prune.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, update

from mailer.config import Settings
from mailer.context import Defaults, PlanOptions, make_context
from mailer.db import digests as digest_repo
from mailer.db import papers as paper_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.digests import PlannedDigest
from mailer.db.listing import Listed, ListingError, pack, unpack
from mailer.db.migrate import downgrade, upgrade
from mailer.db.session import SessionFactory
from mailer.db.tables import (
    BounceReportRow,
    DigestProfileRow,
    DigestRow,
    FeedbackRow,
    PaperRow,
    SubscriberRow,
)
from mailer.matching import PaperIndex, parse_profile
from mailer.models import DigestStatus, Match, Paper, Period
from mailer.ops.prune import prune
from mailer.pipeline.plan import DigestPlanner
from mailer.pipeline.render import render_stored
from mailer.subscribers.manage import SubscriberInput, add
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SAMPLE = Path(__file__).resolve().parent.parent / "mailer" / "data" / "sample_papers.jsonl"
PROFILES = [
    "diffusion policy",
    '"reinforcement learning", graph neural',
    "title:transformer, language model",
    "learning, reward, -survey",
    "cat:cs.RO, robot",
    "*",
    'representation, "self-supervised", -"position paper"',
    "author:levine, exploration",
]


def sample_papers() -> list[Paper]:
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
    return [
        Paper(
            key=row["key"],
            title=row["title"],
            abstract=row.get("abstract", ""),
            authors=tuple(row.get("authors", ())),
            categories=tuple(row.get("categories", ())),
            url=row.get("url"),
            upvotes=row.get("upvotes"),
            source="test",
        )
        for row in rows
    ]


def seed(sessions: SessionFactory, profiles: list[str]) -> list[int]:
    with sessions.begin() as session:
        paper_repo.upsert_papers(session, sample_papers(), NOW - timedelta(hours=3))
    joined = NOW - timedelta(hours=20)
    return [
        add(sessions, SubscriberInput(f"r{i}@example.org", profile), confirmed=True,
            defaults=Defaults(), now=joined).id
        for i, profile in enumerate(profiles)
    ]  # fmt: skip


def planner(sessions: SessionFactory) -> DigestPlanner:
    counter = iter(range(1_000_000))
    return DigestPlanner(
        sessions, new_message_id=lambda: f"<{next(counter)}@example.org>", options=PlanOptions()
    )


def previews(sessions: SessionFactory) -> list[PlannedDigest]:
    """What the planner decides for every subscriber now, not yet stored."""
    with sessions() as session:
        rows = subscriber_repo.due_subscribers(session, NOW, None, 100)
        return [planner(sessions).preview(session, row, NOW) for row in rows]


def test_a_stored_digest_loads_back_exactly_as_planned(session_factory: SessionFactory) -> None:
    seed(session_factory, PROFILES)
    plans = previews(session_factory)
    assert sum(len(p.matches) for p in plans) > 60  # every kind of interest lists papers
    with session_factory.begin() as session:
        assert digest_repo.insert_digests(session, plans, NOW) == len(plans)
    with session_factory() as session:
        ids = session.scalars(select(DigestRow.id).order_by(DigestRow.subscriber_id)).all()
        loaded = digest_repo.load_digests(session, ids)
    for digest_id, plan in zip(ids, sorted(plans, key=lambda p: p.subscriber_id), strict=True):
        stored = loaded[digest_id].matches
        assert [m.paper.key for m in stored] == [m.paper.key for m in plan.matches]
        # Interests, matched words and spans re-matched on load equal the planner's.
        assert [_why(m) for m in stored] == [_why(m) for m in plan.matches]


def _why(match: Match) -> tuple[object, ...]:
    return (match.paper.key, match.score, match.interests, match.terms, match.spans,
            match.learned, match.resembles)  # fmt: skip


def test_profile_texts_are_stored_once_however_many_digests_use_them(
    session_factory: SessionFactory,
) -> None:
    seed(session_factory, ["diffusion policy"] * 3 + ["robot"])
    plans = previews(session_factory)
    with session_factory.begin() as session:
        digest_repo.insert_digests(session, plans, NOW)
    with session_factory() as session:
        texts = session.scalars(select(DigestProfileRow.text).order_by(DigestProfileRow.text))
        assert list(texts) == ["diffusion policy", "robot"]


def test_a_retry_after_a_profile_edit_renders_the_same_email(
    session_factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    (sid,) = seed(session_factory, ["diffusion policy, robot"])
    planner(session_factory).run(now=NOW, force=True, dry_run=False)
    ctx = make_context(Settings(secret_key="k" * 32), session_factory, clock=lambda: NOW)
    with session_factory() as session:
        digest_id = session.scalars(select(DigestRow.id)).one()
    before = render_stored(ctx, digest_id).rendered
    assert "diffusion policy" in before.text
    with session_factory.begin() as session:  # the reader edits their profile meanwhile
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id == sid).values(profile="graph")
        )
    # The retry comes later: its links are still stamped with the time the digest was planned.
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    after = render_stored(ctx, digest_id).rendered
    assert (after.subject, after.html, after.text) == (before.subject, before.html, before.text)


def test_the_never_twice_record_reads_the_packed_listing(session_factory: SessionFactory) -> None:
    (sid,) = seed(session_factory, ["learning"])
    planner(session_factory).run(now=NOW, force=True, dry_run=False)
    with session_factory() as session:
        all_ids = set(session.scalars(select(PaperRow.id)))
        sent = digest_repo.sent_paper_ids(session, sid, all_ids)
        (listed,) = digest_repo.load_digests(
            session, session.scalars(select(DigestRow.id)).all()
        ).values()
        assert sent == {m.paper.id for m in listed.matches} and sent
        assert digest_repo.sent_paper_ids_many(session, [sid, 999], all_ids) == {sid: sent}
    # A second run in the same window lists none of them again.
    report = planner(session_factory).run(now=NOW + timedelta(hours=1), force=True, dry_run=False)
    assert report.queued == 0


def test_the_listing_round_trips_and_refuses_garbage() -> None:
    listed = [
        Listed(7, 2.5),
        Listed(2**40, 0.125, learned=1.75),
        Listed(9, 0.0, learned=0.5, resembles="A liked — paper"),
    ]
    assert unpack(pack(listed)) == listed
    assert unpack(pack([Listed(1, 1.0)])) == [Listed(1, 1.0)]
    assert len(pack([Listed(i, 1.0) for i in range(20)])) == 4 + 20 * 16
    for garbage in (b"", b"\x09\x00\x01\x00", pack(listed)[:-3], pack(listed[:1]) + b"x"):
        with pytest.raises(ListingError):
            unpack(garbage)


# --- migration 0008 ------------------------------------------------------------------------


def _old_rows(engine: Engine) -> tuple[list[dict[str, Any]], int]:
    """Digests in the 0007 layout, explained by the engine; and a bounce report's digest id."""
    papers = sample_papers()[:60]
    profile = "learning, reward, -survey"
    with engine.begin() as conn:
        ids = conn.execute(
            insert(_table(PaperRow)).returning(PaperRow.id, sort_by_parameter_order=True),
            [{"key": p.key, "title": p.title, "abstract": p.abstract, "authors": list(p.authors),
              "categories": list(p.categories), "keywords": [], "sources": ["test"],
              "first_seen_at": NOW, "updated_at": NOW} for p in papers],
        ).scalars().all()  # fmt: skip
        papers = [replace(p, id=i) for p, i in zip(papers, ids, strict=True)]
        sid = conn.execute(
            insert(_table(SubscriberRow)).returning(SubscriberRow.id),
            {"email": "old@example.org", "status": "active", "profile": profile,
             "frequency": "daily", "send_time": "08:00", "timezone": "UTC", "weekday": 0,
             "created_at": NOW, "hard_bounces": 0, "soft_bounces": 0},
        ).scalar_one()  # fmt: skip
        matches = PaperIndex(papers).match(parse_profile(profile))[:12]
        digest_ids = []
        for day, chunk in enumerate((matches[:6], matches[6:])):
            digest_ids.append(
                conn.execute(
                    insert(_table(DigestRow)).returning(DigestRow.id),
                    {"subscriber_id": sid, "period": f"2026-11-{20 + day}", "status": "sent",
                     "message_id": f"<old{day}@x>", "paper_count": len(chunk),
                     "matched_count": len(chunk), "considered_count": 60, "attempts": 1,
                     "window_end": NOW, "created_at": NOW},
                ).scalar_one()
            )  # fmt: skip
        rows = [
            {"digest_id": digest_id, "paper_id": m.paper.id, "subscriber_id": sid, "rank": rank,
             "score": m.score, "interests": list(m.interests), "terms": list(m.terms),
             "spans": [[s.field, s.start, s.end] for s in m.spans],
             "learned": 0.5 if rank == 2 else None,
             "resembles": None}
            for digest_id, chunk in zip(digest_ids, (matches[:6], matches[6:]), strict=True)
            for rank, m in enumerate(chunk, start=1)
        ]  # fmt: skip
        conn.execute(insert(_digest_paper(conn)), rows)
        conn.execute(
            insert(_table(BounceReportRow)),
            {"key": "r1", "kind": "hard", "received_at": NOW, "subscriber_id": sid,
             "digest_id": digest_ids[0], "counted": True},
        )  # fmt: skip
    return rows, digest_ids[0]


def _table(row: type[Any]) -> Any:
    return row.metadata.tables[row.__tablename__]


def _digest_paper(conn: Any) -> Any:
    from sqlalchemy import MetaData, Table

    return Table("digest_paper", MetaData(), autoload_with=conn)


def _read_old(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        table = _digest_paper(conn)
        found = conn.execute(select(table).order_by(table.c.digest_id, table.c.rank)).mappings()
        return [dict(row) for row in found]


def test_migration_0008_converts_rows_both_ways(db_url: str, engine: Engine) -> None:
    downgrade(db_url, "0007")
    rows, reported = _old_rows(engine)
    upgrade(db_url)
    from mailer.db.session import make_session_factory

    with make_session_factory(engine)() as session:
        ids = session.scalars(select(DigestRow.id).order_by(DigestRow.id)).all()
        loaded = digest_repo.load_digests(session, ids)
        assert session.scalar(select(func.count()).select_from(DigestProfileRow)) == 1
        report_digest = session.scalar(select(BounceReportRow.digest_id))
    as_loaded = [
        {"digest_id": d, "paper_id": m.paper.id, "score": m.score,
         "interests": list(m.interests), "terms": list(m.terms),
         "spans": [[s.field, s.start, s.end] for s in m.spans], "learned": m.learned}
        for d in ids for m in loaded[d].matches
    ]  # fmt: skip
    keys = ("digest_id", "paper_id", "score", "interests", "terms", "spans", "learned")
    assert as_loaded == [{k: row[k] for k in keys} for row in rows]
    assert report_digest == reported
    downgrade(db_url, "0007")
    assert _read_old(engine) == rows
    with engine.connect() as conn:
        assert conn.execute(select(BounceReportRow.digest_id)).scalar_one() == reported
    upgrade(db_url)


# --- retention -----------------------------------------------------------------------------


def _digest_at(
    sessions: SessionFactory, sid: int, day: int, status: DigestStatus, papers: Sequence[int]
) -> int:
    at = NOW - timedelta(days=day)
    plan = PlannedDigest(
        subscriber_id=sid, period=Period.parse(at.date().isoformat()), status=status,
        note=None, message_id=f"<{sid}-{day}@x>",
        matches=tuple(Match(Paper(key=str(p), title="", id=p), 1.0, ()) for p in papers),
        matched_count=len(papers), considered_count=9, window_start=at - timedelta(days=1),
        window_end=at, profile=f"profile of {sid} on day {day}" if papers else None,
    )  # fmt: skip
    with sessions.begin() as session:
        digest_id = digest_repo.insert_digest(session, plan, at)
        assert digest_id is not None
        if status is not DigestStatus.PENDING:
            session.execute(
                update(DigestRow).where(DigestRow.id == digest_id).values(status=status.value)
            )
    return digest_id


def _remaining(sessions: SessionFactory) -> set[int]:
    with sessions() as session:
        return set(session.scalars(select(DigestRow.id)))


def test_prune_keeps_unsent_and_latest_digests_and_the_readers_votes(
    session_factory: SessionFactory,
) -> None:
    reader, quiet = seed(session_factory, ["learning", "robot"])
    with session_factory() as session:
        pids = session.scalars(select(PaperRow.id).order_by(PaperRow.id).limit(3)).all()
    old_sent = _digest_at(session_factory, reader, 120, DigestStatus.SENT, pids[:2])
    old_skip = _digest_at(session_factory, reader, 100, DigestStatus.SKIPPED, [])
    old_retry = _digest_at(session_factory, reader, 95, DigestStatus.RETRY, pids[2:])
    recent = _digest_at(session_factory, reader, 3, DigestStatus.SENT, pids[:1])
    quiet_latest = _digest_at(session_factory, quiet, 200, DigestStatus.SENT, pids[:1])
    with session_factory.begin() as session:
        session.execute(
            insert(FeedbackRow),
            {"subscriber_id": reader, "paper_id": pids[0], "key": "p0", "vote": 1,
             "origin": "email", "at": NOW - timedelta(days=150)},
        )  # fmt: skip
        profiles = session.scalar(select(func.count()).select_from(DigestProfileRow))
    assert profiles == 4

    dry = prune(session_factory, retention_days=90, now=NOW, dry_run=True)
    assert (dry.digests, dry.profiles, dry.dry_run) == (2, 1, True)
    assert _remaining(session_factory) == {old_sent, old_skip, old_retry, recent, quiet_latest}

    done = prune(session_factory, retention_days=90, now=NOW, batch=1)
    assert (done.digests, done.profiles) == (2, 1)
    assert _remaining(session_factory) == {old_retry, recent, quiet_latest}
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(FeedbackRow)) == 1
        # The latest window of a subscriber who got nothing for 200 days still starts theirs.
        assert digest_repo.last_window_end(session, quiet) == NOW - timedelta(days=200)
        assert digest_repo.load_digest(session, old_retry) is not None
    again = prune(session_factory, retention_days=90, now=NOW)
    assert (again.digests, again.profiles) == (0, 0)


def test_erasing_a_subscriber_erases_the_profile_texts_only_they_used(
    session_factory: SessionFactory,
) -> None:
    from mailer.subscribers.manage import remove

    first, second = seed(session_factory, ["learning", "learning"])
    with session_factory() as session:
        pid = session.scalars(select(PaperRow.id).limit(1)).one()
    _digest_at(session_factory, first, 1, DigestStatus.SENT, [pid])
    plan_shared = _digest_at(session_factory, second, 1, DigestStatus.SENT, [pid])
    with session_factory.begin() as session:  # the second reader's text is shared with nobody
        assert session.scalar(select(func.count()).select_from(DigestProfileRow)) == 2
    remove(session_factory, first, NOW)
    with session_factory() as session:
        texts = list(session.scalars(select(DigestProfileRow.text)))
        assert texts == [f"profile of {second} on day 1"]
        assert digest_repo.load_digest(session, plan_shared) is not None


def test_mailer_prune_reports_per_table(cli: Invoke, session_factory: SessionFactory) -> None:
    (reader,) = seed(session_factory, ["learning"])
    with session_factory() as session:
        pid = session.scalars(select(PaperRow.id).limit(1)).one()
    now = datetime.now(UTC)
    days_back = (now - NOW).days
    _digest_at(session_factory, reader, 200 - days_back, DigestStatus.SENT, [pid])
    _digest_at(session_factory, reader, 2 - days_back, DigestStatus.SENT, [pid + 1])
    dry = cli("prune", "--dry-run")
    assert dry.code == 0, dry.err
    assert "would delete" in dry.out and "digest" in dry.out and "1" in dry.out
    assert len(_remaining(session_factory)) == 2
    done = cli("prune", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["deleted"] == {
        "digest": 1, "digest_profile": 1, "fetch_run": 0, "bounce_report": 0
    }  # fmt: skip
    assert len(_remaining(session_factory)) == 1


def test_a_sending_run_indexes_its_windows_papers_once(session_factory: SessionFactory) -> None:
    """Re-matching needs an index of the listed papers: built once per run, not per batch."""
    seed(session_factory, PROFILES)
    planner(session_factory).run(now=NOW, force=True, dry_run=False)
    with session_factory() as session:
        ids = session.scalars(select(DigestRow.id).where(DigestRow.paper_count > 0)).all()
    cache = digest_repo.PaperCache()
    indexes = []
    for start in range(0, len(ids), 2):
        with session_factory() as session:
            digest_repo.load_digests(session, ids[start : start + 2], cache)
        indexes.append(cache.reasons._index)
    assert len(ids) >= 6 and indexes[0] is not None
    assert all(index is indexes[0] for index in indexes)  # the first batch indexed the window


def test_the_worker_schedules_a_prune_every_day() -> None:
    from mailer.daemon.scheduler import build_scheduler

    async def nothing() -> None:
        return None

    sched = build_scheduler(
        fetch_job=nothing, due_job=nothing, fetch_cron="0 * * * *", prune_job=nothing
    )
    job = sched.get_job("prune")
    assert job is not None and job.trigger.interval == timedelta(days=1)
    without = build_scheduler(fetch_job=nothing, due_job=nothing, fetch_cron="0 * * * *")
    assert without.get_job("prune") is None


def test_prune_vacuums_the_digest_tables_on_postgresql(
    engine: Engine, session_factory: SessionFactory
) -> None:
    """Each digest is written three times on its first day: a daily prune must free the
    superseded versions even where autovacuum is off or has not reached the table yet."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite reuses freed pages without a VACUUM")
    (reader,) = seed(session_factory, ["learning"])
    with session_factory() as session:
        pid = session.scalars(select(PaperRow.id).limit(1)).one()
    _digest_at(session_factory, reader, 1, DigestStatus.SENT, [pid])  # inserted, then updated

    def vacuums() -> dict[str, int]:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT relname, vacuum_count FROM pg_stat_user_tables"
                " WHERE relname IN ('digest', 'digest_profile')"
            )
            return {str(name): int(count) for name, count in rows}

    before = vacuums()
    report = prune(session_factory, retention_days=90, now=NOW)
    assert (report.digests, report.profiles) == (0, 0)  # nothing old enough: vacuumed anyway
    after = vacuums()
    assert {name: after[name] - before.get(name, 0) for name in after} == {
        "digest": 1,
        "digest_profile": 1,
    }
    dry = prune(session_factory, retention_days=90, now=NOW, dry_run=True)
    assert dry.dry_run and vacuums() == after  # a dry run changes nothing
