"""``mailer stats``: subscribers by status, papers per source per day, digests by status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from mailer.db import digests as digest_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.tables import FetchRunRow
from mailer.models import FetchOutcome


@dataclass(frozen=True, slots=True)
class SourceDay:
    """One source's fetches for one announcement day, summed."""

    source: str
    day: date | None
    new: int
    updated: int
    fetches: int
    errors: int
    last_outcome: str


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of the store."""

    subscribers: dict[str, int]
    digests: dict[str, int]
    papers: list[SourceDay]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "subscribers": self.subscribers,
            "digests": self.digests,
            "papers_per_source_day": [
                {
                    "source": s.source, "day": s.day.isoformat() if s.day else None,
                    "new": s.new, "updated": s.updated, "fetches": s.fetches,
                    "errors": s.errors, "last_outcome": s.last_outcome,
                }
                for s in self.papers
            ],
        }  # fmt: skip


def collect(session: Session, today: date, days: int = 14) -> Stats:
    """Counts from the database; the fetch log covers the last ``days`` days up to ``today``."""
    return Stats(
        subscribers=subscriber_repo.count_by_status(session),
        digests=digest_repo.count_by_status(session),
        papers=_papers(session, today - timedelta(days=days - 1)),
    )


def _papers(session: Session, since: date) -> list[SourceDay]:
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
        SourceDay(
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
