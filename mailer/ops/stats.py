"""``mailer stats``: subscribers and digests by status, papers, bounces and complaints per
day, and each source's state with its last error (which the public ``/healthz`` does not show)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from mailer.db import bounces as bounce_repo
from mailer.db import digests as digest_repo
from mailer.db import fetches as fetch_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.bounces import BounceDay
from mailer.db.fetches import FetchDay
from mailer.ops.health import source_status


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of the store."""

    subscribers: dict[str, int]
    digests: dict[str, int]
    papers: list[FetchDay]
    sources: list[SourceState] = field(default_factory=list)
    bounces: list[BounceDay] = field(default_factory=list)

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
            "sources": [
                {
                    "source": s.name, "status": s.status,
                    "last_attempt": s.last_attempt.isoformat() if s.last_attempt else None,
                    "last_success": s.last_success.isoformat() if s.last_success else None,
                    "last_error": s.last_error,
                }
                for s in self.sources
            ],
            "bounces_per_day": [
                {
                    "day": b.day.isoformat(), "sent": b.sent, "hard": b.hard, "soft": b.soft,
                    "complaints": b.complaints, "bounce_rate": b.bounce_rate,
                    "complaint_rate": b.complaint_rate,
                }
                for b in self.bounces
            ],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source as the operator sees it: when it last ran, and why it last failed."""

    name: str
    status: str
    last_attempt: datetime | None
    last_success: datetime | None
    last_error: str | None


def collect(session: Session, today: date, days: int = 14) -> Stats:
    """Counts from the database; the per-day ones cover the last ``days`` days up to ``today``.

    Bounce and complaint rates are per UTC day: the reports that arrived that day against
    the digests sent that day, as mailbox providers count complaint rates.
    """
    since = today - timedelta(days=days - 1)
    return Stats(
        subscribers=subscriber_repo.count_by_status(session),
        digests=digest_repo.count_by_status(session),
        papers=fetch_repo.fetch_days(session, since),
        sources=[
            SourceState(
                name=row.name,
                status=source_status(row.last_error, row.last_success_at),
                last_attempt=row.last_attempt_at,
                last_success=row.last_success_at,
                last_error=row.last_error,
            )
            for row in fetch_repo.last_fetches(session)
        ],
        bounces=bounce_repo.bounce_days(session, since),
    )
