"""Repository functions for source state (conditional GET validators) and the fetch log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from mailer.db.tables import FetchRunRow, SourceStateRow
from mailer.models import FetchOutcome


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """The outcome of one fetch of one source, as logged."""

    source: str
    day: date | None
    outcome: FetchOutcome
    new: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None


def source_state(session: Session, name: str) -> SourceStateRow:
    """The state row of a source, created on first use (the caller commits)."""
    row = session.scalars(select(SourceStateRow).where(SourceStateRow.name == name)).first()
    if row is None:
        row = SourceStateRow(name=name, items_seen=0)
        session.add(row)
        session.flush()
    return row


def record_fetch(
    session: Session, record: FetchRecord, now: datetime, validators: tuple[str | None, str | None]
) -> None:
    """Log a fetch and update the source's state; validators are (ETag, Last-Modified)."""
    state = source_state(session, record.source)
    state.last_attempt_at = now
    if record.outcome is FetchOutcome.ERROR:
        state.last_error = record.error
    else:
        state.last_success_at = now
        state.last_error = None
        state.etag, state.last_modified = validators
        state.last_day = record.day or state.last_day
        state.items_seen = (state.items_seen or 0) + record.new + record.updated
    session.add(
        FetchRunRow(
            source=record.source,
            day=record.day,
            outcome=record.outcome.value,
            new=record.new,
            updated=record.updated,
            skipped=record.skipped,
            error=record.error,
            at=now,
        )
    )


def last_fetches(session: Session) -> list[SourceStateRow]:
    """Every source's state, by name (for /healthz and stats)."""
    return list(session.scalars(select(SourceStateRow).order_by(SourceStateRow.name)))


def fetch_runs_on(session: Session, day: date) -> list[FetchRunRow]:
    """The fetch log entries for one announcement day."""
    return list(
        session.scalars(select(FetchRunRow).where(FetchRunRow.day == day).order_by(FetchRunRow.at))
    )


@dataclass(frozen=True, slots=True)
class FetchDay:
    """One source's fetches for one announcement day, summed."""

    source: str
    day: date | None
    new: int
    updated: int
    fetches: int
    errors: int
    last_outcome: str


def fetch_days(session: Session, since: date) -> list[FetchDay]:
    """Each (source, day) of the fetch log since ``since``, summed, newest day first."""
    rows = session.execute(
        select(
            FetchRunRow.source,
            FetchRunRow.day,
            func.sum(FetchRunRow.new),
            func.sum(FetchRunRow.updated),
            func.count(),
            func.sum(case((FetchRunRow.outcome == FetchOutcome.ERROR.value, 1), else_=0)),
            func.max(FetchRunRow.at),
        )
        .where(FetchRunRow.day >= since)
        .group_by(FetchRunRow.source, FetchRunRow.day)
        .order_by(FetchRunRow.day.desc(), FetchRunRow.source)
    ).all()
    last = _last_outcomes(session, since)
    return [
        FetchDay(
            source, day, int(new or 0), int(updated or 0), int(count), int(errors or 0),
            last.get((source, day), ""),
        )
        for source, day, new, updated, count, errors, _ in rows
    ]  # fmt: skip


def _last_outcomes(session: Session, since: date) -> dict[tuple[str, date | None], str]:
    """The outcome of the latest fetch of each (source, day)."""
    outcomes: dict[tuple[str, date | None], str] = {}
    query = (
        select(FetchRunRow.source, FetchRunRow.day, FetchRunRow.outcome)
        .where(FetchRunRow.day >= since)
        .order_by(FetchRunRow.at, FetchRunRow.id)
    )
    for source, day, outcome in session.execute(query):
        outcomes[(source, day)] = outcome
    return outcomes
