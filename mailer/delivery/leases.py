"""The leases a sending run holds on claimed outbox rows: when to renew them, which were lost.

A claimed batch is sent a few rows at a time: on a slow server or under ``MAILER_SEND_RATE``
its last rows could wait longer than the lease, and another worker would take (and send) them
too. So once half of the earliest lease has passed, every held row's lease is extended; a row
another worker has taken meanwhile is dropped instead of sent; and a row whose lease could not
be extended is not started with less than a quarter of its lease left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mailer.db.outbox import ClaimedDigest


@dataclass(slots=True)
class HeldRows:
    """Claimed rows whose outcome is not written yet, each with the end of its lease."""

    lease: timedelta
    rows: dict[int, tuple[ClaimedDigest, datetime]] = field(default_factory=dict, init=False)
    # No later than the earliest lease held: renew_due() is asked before every send, and
    # scanning every held row each time cost more than the rest of it.
    earliest: datetime | None = field(default=None, init=False)

    def hold(self, digests: Iterable[ClaimedDigest], until: datetime) -> None:
        """Start holding freshly claimed rows (a row already held keeps its lease)."""
        for digest in digests:
            self.rows.setdefault(digest.digest_id, (digest, until))
        if self.earliest is None or until < self.earliest:
            self.earliest = until

    def drop(self, digest_id: int) -> None:
        """The row's outcome is written, or it was handed back: no lease to keep."""
        self.rows.pop(digest_id, None)

    def renew_due(self, now: datetime) -> bool:
        """Half of the earliest lease has passed."""
        if self.earliest is None or now < self.earliest - self.lease / 2:
            return False  # not even by the bound, so not by the earliest lease itself
        self.earliest = min((until for _, until in self.rows.values()), default=None)
        return self.earliest is not None and now >= self.earliest - self.lease / 2

    def too_short(self, digest_id: int, now: datetime) -> bool:
        """Less than a quarter of this row's lease is left (or it is no longer ours)."""
        held = self.rows.get(digest_id)
        return held is None or now >= held[1] - self.lease / 4

    def snapshot(self) -> list[ClaimedDigest]:
        """The rows to renew."""
        return [digest for digest, _ in self.rows.values()]

    def renewed(self, asked: Iterable[ClaimedDigest], kept: set[int], until: datetime) -> set[int]:
        """Apply a renewal; returns the ids of rows another worker has taken over.

        Rows held when the renewal was asked and still held now: those it extended get the new
        lease, the others are no longer ours and are dropped. Rows whose outcome was written
        meanwhile are not held any more and are left alone.
        """
        lost: set[int] = set()
        for digest in asked:
            held = self.rows.get(digest.digest_id)
            if held is None:
                continue
            if digest.digest_id in kept:
                self.rows[digest.digest_id] = (held[0], until)
                if self.earliest is None or until < self.earliest:  # a clock set back
                    self.earliest = until
            else:
                lost.add(digest.digest_id)
                del self.rows[digest.digest_id]
        return lost
