"""``mailer prune``: delete digest contents older than the retention, in short batches.

What goes and what stays is decided in ``mailer.db.retention``: old final digests (never one
still pending, retrying or sending, never a subscriber's latest), then the profile texts no
digest refers to any more, and the fetch log and applied bounce reports older than the
retention. Papers, subscribers, votes (the reader's own examples) and the suppression list
are not touched. Each batch commits on its own, so a large first prune
never holds the database for long and can be interrupted and run again. On PostgreSQL it
ends with a VACUUM of the digest tables, so the freed space is reused the next day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.db import retention
from mailer.db.session import SessionFactory

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune deleted (or, dry, would delete), per table."""

    cutoff: datetime
    retention_days: int
    digests: int
    profiles: int
    dry_run: bool
    fetch_runs: int = 0
    bounce_reports: int = 0

    def per_table(self) -> dict[str, int]:
        """Rows deleted (or, dry, to delete) per table."""
        return {
            "digest": self.digests,
            "digest_profile": self.profiles,
            "fetch_run": self.fetch_runs,
            "bounce_report": self.bounce_reports,
        }

    def as_dict(self) -> dict[str, object]:
        """Plain data for ``--json``."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "retention_days": self.retention_days,
            "dry_run": self.dry_run,
            "deleted" if not self.dry_run else "would_delete": self.per_table(),
        }


def prune(
    sessions: SessionFactory,
    *,
    retention_days: int,
    now: datetime,
    dry_run: bool = False,
    batch: int = retention.BATCH,
) -> PruneReport:
    """Delete (or only count, ``dry_run``) what is older than ``retention_days`` at ``now``."""
    cutoff = now - timedelta(days=retention_days)
    if dry_run:
        with sessions() as session:
            return PruneReport(
                cutoff,
                retention_days,
                retention.count_old_digests(session, cutoff),
                retention.count_unused_profiles(session, cutoff),
                dry_run=True,
                fetch_runs=retention.count_old_fetch_runs(session, cutoff),
                bounce_reports=retention.count_old_bounce_reports(session, cutoff),
            )
    # Reports first: deleting a digest sets its reports' reference to NULL, one update each.
    reports = _in_batches(sessions, lambda s: retention.delete_old_bounce_reports(s, cutoff, batch))
    digests = _in_batches(sessions, lambda s: retention.delete_old_digests(s, cutoff, batch))
    profiles = _in_batches(sessions, lambda s: retention.delete_unused_profiles(s, limit=batch))
    fetches = _in_batches(sessions, lambda s: retention.delete_old_fetch_runs(s, cutoff, batch))
    report = PruneReport(
        cutoff, retention_days, digests, profiles, False, fetch_runs=fetches, bounce_reports=reports
    )
    if any(report.per_table().values()):
        deleted = " ".join(f"{table}={n}" for table, n in report.per_table().items())
        log.info("pruned %s before=%s", deleted, cutoff.isoformat())
    with sessions() as session:  # even with nothing deleted: today's superseded row versions
        retention.reclaim(session)
    return report


def _in_batches(sessions: SessionFactory, step: retention.Step) -> int:
    """Run ``step`` in its own transaction until it deletes nothing; how many in all."""
    total = 0
    while True:
        with sessions.begin() as session:
            deleted = step(session)
        total += deleted
        if not deleted:
            return total
