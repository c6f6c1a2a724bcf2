"""Retention reaches the logs too: old fetch runs and applied bounce reports are pruned.

Both grow without end otherwise: the fetch log with time, bounce reports with the number of
subscribers (and they hold SMTP replies naming addresses). What a bounce did to its subscriber
(the counters, the status, a suppression) stays.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, insert, select

from mailer.db.session import SessionFactory
from mailer.db.tables import BounceReportRow, FetchRunRow, SubscriberRow
from mailer.ops.prune import prune
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _log(sessions: SessionFactory, now: datetime, ages_in_days: list[int]) -> int:
    """One fetch run and one bounce report per age; the id of the subscriber reported."""
    with sessions.begin() as session:
        subscriber = session.scalar(
            insert(SubscriberRow)
            .values(email="gone@example.org", status="bounced", profile="robots",
                    frequency="daily", send_time="08:00", timezone="UTC", created_at=now,
                    hard_bounces=1)
            .returning(SubscriberRow.id)
        )  # fmt: skip
        assert subscriber is not None
        for i, age in enumerate(ages_in_days):
            at = now - timedelta(days=age)
            session.add(FetchRunRow(source="hf-daily", day=at.date(), outcome="ok", at=at))
            session.add(
                BounceReportRow(key=f"{i:064x}", kind="hard", received_at=at,
                                subscriber_id=subscriber, status="5.1.1", code=550,
                                detail="550 5.1.1 <gone@example.org>: no such user")
            )  # fmt: skip
    return subscriber


def _ages(sessions: SessionFactory) -> tuple[list[date], list[datetime]]:
    with sessions() as session:
        days = sorted(d for d in session.scalars(select(FetchRunRow.day)) if d is not None)
        received = sorted(session.scalars(select(BounceReportRow.received_at)))
    return days, received


def test_prune_deletes_fetch_runs_and_bounce_reports_older_than_the_retention(
    session_factory: SessionFactory,
) -> None:
    subscriber = _log(session_factory, NOW, [400, 120, 91, 89, 1])

    dry = prune(session_factory, retention_days=90, now=NOW, dry_run=True)
    assert (dry.fetch_runs, dry.bounce_reports) == (3, 3)
    assert len(_ages(session_factory)[0]) == 5  # a dry run changes nothing

    done = prune(session_factory, retention_days=90, now=NOW, batch=2)
    assert (done.fetch_runs, done.bounce_reports) == (3, 3)
    days, received = _ages(session_factory)
    assert days == [(NOW - timedelta(days=89)).date(), (NOW - timedelta(days=1)).date()]
    assert [NOW - r.replace(tzinfo=UTC) for r in received] == [timedelta(89), timedelta(1)]
    with session_factory() as session:
        row = session.get(SubscriberRow, subscriber)
        assert row is not None and (row.status, row.hard_bounces) == ("bounced", 1)
    again = prune(session_factory, retention_days=90, now=NOW)
    assert (again.fetch_runs, again.bounce_reports) == (0, 0)


def test_mailer_prune_names_the_logs_it_pruned(
    cli: Invoke, session_factory: SessionFactory
) -> None:
    _log(session_factory, datetime.now(UTC), [200, 3])
    dry = cli("prune", "--dry-run")
    assert dry.code == 0, dry.err
    assert "fetch_run" in dry.out and "bounce_report" in dry.out
    done = cli("prune", "--json")
    assert done.code == 0, done.err
    deleted = json.loads(done.out)["deleted"]
    assert (deleted["fetch_run"], deleted["bounce_report"]) == (1, 1)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(FetchRunRow)) == 1
        assert session.scalar(select(func.count()).select_from(BounceReportRow)) == 1
