"""Issue 9: every digest at the subscriber's own local hour, through DST, downtime and races.

Everything runs on an injected clock: the planner is asked "what is due at instant T?".
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mailer.context import CatchUp, Defaults, PlanOptions
from mailer.db import papers as paper_repo
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow
from mailer.models import Paper
from mailer.pipeline.plan import DigestPlanner, PlanReport
from mailer.subscribers.manage import Changes, SubscriberInput, add, update

START = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _papers(session_factory: SessionFactory, at: datetime, *keys: str) -> None:
    batch = [Paper(key=k, title=f"Diffusion paper {k}", abstract="diffusion") for k in keys]
    with session_factory.begin() as session:
        paper_repo.upsert_papers(session, batch, at)


def _subscribe(
    session_factory: SessionFactory,
    email: str,
    *,
    zone: str = "UTC",
    send_time: str = "08:00",
    frequency: str = "daily",
    weekday: str | None = None,
    at: datetime = START,
) -> int:
    raw = SubscriberInput(email, "diffusion", frequency, send_time, zone, weekday)
    return add(session_factory, raw, confirmed=True, defaults=Defaults(), now=at).id


def _tick(
    session_factory: SessionFactory, now: datetime, catch_up: CatchUp = CatchUp.EACH
) -> PlanReport:
    counter = iter(range(10**9))
    planner = DigestPlanner(
        session_factory,
        new_message_id=lambda: f"<{next(counter)}.{now.timestamp()}@example.org>",
        options=PlanOptions(catch_up=catch_up, first_digest_backfill=True),
    )
    return planner.run(now=now, force=False, dry_run=False)


def _rows(session_factory: SessionFactory, subscriber_id: int) -> list[DigestRow]:
    with session_factory() as session:
        query = select(DigestRow).where(DigestRow.subscriber_id == subscriber_id)
        return list(session.scalars(query.order_by(DigestRow.period)))


@pytest.mark.parametrize(
    ("zone", "due"),
    [
        ("UTC", utc(2026, 11, 17, 8, 0)),
        ("Asia/Tokyo", utc(2026, 11, 16, 23, 0)),
        ("America/Los_Angeles", utc(2026, 11, 17, 16, 0)),
        ("Australia/Lord_Howe", utc(2026, 11, 16, 21, 0)),  # UTC+11 (30-minute DST, in effect)
        ("Asia/Kathmandu", utc(2026, 11, 17, 2, 15)),  # UTC+5:45
    ],
)
def test_due_exactly_at_the_local_send_time(
    session_factory: SessionFactory, zone: str, due: datetime
) -> None:
    # Subscribed just after the previous period's send time, so the next digest is the one due.
    sub = _subscribe(session_factory, "a@example.org", zone=zone, at=due - timedelta(hours=23))
    _tick(session_factory, due - timedelta(hours=23))  # the first (this period's) digest
    _papers(session_factory, due - timedelta(hours=2), "p1")
    before = len(_rows(session_factory, sub))
    assert _tick(session_factory, due - timedelta(minutes=1)).queued == 0
    assert len(_rows(session_factory, sub)) == before
    assert _tick(session_factory, due).queued == 1
    assert len(_rows(session_factory, sub)) == before + 1


def test_daily_and_weekly_over_a_week_of_ticks(session_factory: SessionFactory) -> None:
    daily = _subscribe(session_factory, "d@example.org")
    weekly = _subscribe(session_factory, "w@example.org", frequency="weekly", weekday="wednesday")
    for day in range(7):
        _papers(session_factory, START + timedelta(days=day, hours=6), f"p{day}")
        for hour in range(0, 24, 3):  # a tick every three hours, all week
            _tick(session_factory, START + timedelta(days=day, hours=hour))
    daily_rows = _rows(session_factory, daily)
    assert [r.period for r in daily_rows] == [f"2026-11-{d}" for d in range(16, 23)]
    assert all(r.status == "pending" and r.paper_count == 1 for r in daily_rows)
    # Monday's first weekly row (this week's Wednesday not yet reached) and exactly one per week.
    assert [r.period for r in _rows(session_factory, weekly)] == ["2026-W47"]
    assert _rows(session_factory, weekly)[0].created_at == utc(2026, 11, 18, 9, 0)


@pytest.mark.parametrize(
    ("zone", "day", "send_time", "expected_due"),
    [
        # Spring forward: 02:30 does not exist; sent at the first valid minute, 03:00 local.
        ("Europe/Berlin", datetime(2026, 3, 29, tzinfo=UTC), "02:30", utc(2026, 3, 29, 1, 0)),
        ("America/New_York", datetime(2026, 3, 8, tzinfo=UTC), "02:30", utc(2026, 3, 8, 7, 0)),
        # Fall back: 01:30 / 02:30 happen twice; the first occurrence, and only once.
        ("Europe/Berlin", datetime(2026, 10, 25, tzinfo=UTC), "02:30", utc(2026, 10, 25, 0, 30)),
        ("America/New_York", datetime(2026, 11, 1, tzinfo=UTC), "01:30", utc(2026, 11, 1, 5, 30)),
    ],
)
def test_dst_days_send_once_at_the_right_instant(
    session_factory: SessionFactory,
    zone: str,
    day: datetime,
    send_time: str,
    expected_due: datetime,
) -> None:
    joined = day - timedelta(hours=10)
    sub = _subscribe(session_factory, "a@example.org", zone=zone, send_time=send_time, at=joined)
    _tick(session_factory, joined)  # the day-before digest
    _papers(session_factory, joined + timedelta(hours=1), "p1")
    created = []
    tick = day - timedelta(hours=2)
    while tick < day + timedelta(hours=12):  # every 15 minutes through the night
        if _tick(session_factory, tick).queued:
            created.append(tick)
        tick += timedelta(minutes=15)
    assert created == [expected_due]
    periods = [r.period for r in _rows(session_factory, sub)]
    assert len(periods) == len(set(periods)) == 2


def test_three_day_outage_each_missed_period_once(session_factory: SessionFactory) -> None:
    sub = _subscribe(session_factory, "a@example.org")
    _papers(session_factory, START + timedelta(hours=1), "monday")
    _tick(session_factory, START + timedelta(hours=9))  # Monday's digest
    # Down from Monday 10:00 to Thursday 12:00; Tuesday's papers were fetched by another worker.
    _papers(session_factory, utc(2026, 11, 17, 6, 0), "tuesday")
    _papers(session_factory, utc(2026, 11, 19, 11, 0), "caught-up")
    report = _tick(session_factory, utc(2026, 11, 19, 12, 0))
    rows = _rows(session_factory, sub)
    assert [r.period for r in rows] == ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19"]
    assert [(r.status, r.paper_count) for r in rows[1:]] == [
        ("pending", 1),  # Tuesday's window held Tuesday's paper
        ("skipped", 0),  # nothing arrived in Wednesday's window: recorded, not mailed
        ("pending", 1),  # Thursday: what the catch-up fetch found
    ]
    assert (report.queued, report.no_papers) == (2, 1)
    assert _tick(session_factory, utc(2026, 11, 19, 12, 1)).queued == 0


def test_three_day_outage_combined(session_factory: SessionFactory) -> None:
    sub = _subscribe(session_factory, "a@example.org")
    _tick(session_factory, START + timedelta(hours=9), CatchUp.COMBINED)
    _papers(session_factory, utc(2026, 11, 17, 6, 0), "tuesday")
    _papers(session_factory, utc(2026, 11, 19, 11, 0), "thursday")
    report = _tick(session_factory, utc(2026, 11, 19, 12, 0), CatchUp.COMBINED)
    rows = _rows(session_factory, sub)
    assert [(r.period, r.status, r.note) for r in rows[1:]] == [
        ("2026-11-17", "skipped", "combined"),
        ("2026-11-18", "skipped", "combined"),
        ("2026-11-19", "pending", None),
    ]
    assert rows[-1].paper_count == 2
    assert (report.queued, report.combined) == (1, 2)


def test_two_concurrent_ticks_create_one_row_per_period(session_factory: SessionFactory) -> None:
    for n in range(40):
        _subscribe(session_factory, f"s{n}@example.org")
    _papers(session_factory, START + timedelta(hours=1), "p1")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            barrier.wait()
            _tick(session_factory, START + timedelta(hours=9))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory() as session:
        pairs = session.execute(select(DigestRow.subscriber_id, DigestRow.period)).all()
    assert len(pairs) == len(set(pairs)) == 40


def test_weekly_switching_to_daily_mid_week(session_factory: SessionFactory) -> None:
    sub = _subscribe(session_factory, "a@example.org", frequency="weekly", weekday="monday")
    _papers(session_factory, START + timedelta(hours=1), "monday")
    _tick(session_factory, START + timedelta(hours=9))  # the weekly digest of 2026-W47
    _papers(session_factory, utc(2026, 11, 17, 6, 0), "tuesday")
    wednesday = utc(2026, 11, 18, 10, 0)
    update(session_factory, sub, Changes(frequency="daily"), wednesday)
    _tick(session_factory, wednesday)
    rows = _rows(session_factory, sub)
    assert [(r.period, r.paper_count) for r in rows] == [("2026-11-18", 1), ("2026-W47", 1)]
    with session_factory() as session:
        titles = session.scalars(select(DigestRow.window_start).order_by(DigestRow.id)).all()
    assert titles[1] == START + timedelta(hours=9)  # the daily window starts where weekly ended
