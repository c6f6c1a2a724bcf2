"""``mailer prune``: delete digest contents older than the retention, in short batches.

What goes and what stays is decided in ``mailer.db.retention``: old final digests (never one
still pending, retrying or sending, never a subscriber's latest), then the profile texts no
digest refers to any more. Papers, subscribers, votes (the reader's own examples) and the
suppression list are not touched. Each batch commits on its own, so a large first prune
never holds the database for long and can be interrupted and run again.
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

    def as_dict(self) -> dict[str, object]:
        """Plain data for ``--json``."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "retention_days": self.retention_days,
            "dry_run": self.dry_run,
            "deleted" if not self.dry_run else "would_delete": {
                "digest": self.digests,
                "digest_profile": self.profiles,
            },
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
            digests = retention.count_old_digests(session, cutoff)
            profiles = retention.count_unused_profiles(session, cutoff)
        return PruneReport(cutoff, retention_days, digests, profiles, dry_run=True)
    digests = _in_batches(sessions, lambda s: retention.delete_old_digests(s, cutoff, batch))
    profiles = _in_batches(sessions, lambda s: retention.delete_unused_profiles(s, limit=batch))
    if digests or profiles:
        log.info("pruned digests=%d profiles=%d before=%s", digests, profiles, cutoff.isoformat())
    return PruneReport(cutoff, retention_days, digests, profiles, dry_run=False)


def _in_batches(sessions: SessionFactory, step: retention.Step) -> int:
    """Run ``step`` in its own transaction until it deletes nothing; how many in all."""
    total = 0
    while True:
        with sessions.begin() as session:
            deleted = step(session)
        total += deleted
        if not deleted:
            return total
