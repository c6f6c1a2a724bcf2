"""``mailer stats``: subscribers by status, papers per source per day, digests by status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from mailer.db import digests as digest_repo
from mailer.db import fetches as fetch_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.fetches import FetchDay


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of the store."""

    subscribers: dict[str, int]
    digests: dict[str, int]
    papers: list[FetchDay]

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
        papers=fetch_repo.fetch_days(session, today - timedelta(days=days - 1)),
    )
