"""Retry policy: exponential backoff with jitter, a give-up deadline, bounce and lease limits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.config import Settings


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long to keep retrying, how fast to back off, and when a subscriber is bounced."""

    base_seconds: float = 60.0
    deadline_hours: float = 24.0
    bounce_limit: int = 1
    lease_seconds: float = 300.0
    max_backoff_seconds: float = 6 * 3600.0
    jitter: float = 0.5  # fraction of each delay that is randomised

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy set by the retry, lease and bounce-limit settings."""
        return cls(
            base_seconds=settings.retry_base_seconds,
            deadline_hours=settings.retry_deadline_hours,
            bounce_limit=settings.bounce_limit,
            lease_seconds=float(settings.lease_seconds),
        )

    def backoff(self, attempts: int, rand: float) -> float:
        """Seconds to wait after the ``attempts``-th failed try; ``rand`` is uniform in [0, 1)."""
        exponent = min(max(attempts, 1) - 1, 30)  # cap the exponent: 2**30 minutes is forever
        delay = min(self.base_seconds * 2.0**exponent, self.max_backoff_seconds)
        # Jitter spreads retries so a server that failed many messages at once is not hit
        # by all of them again at the same instant.
        return delay * (1.0 - self.jitter) + delay * self.jitter * rand

    def deadline(self, created_at: datetime) -> datetime:
        """The instant after which a digest is given up."""
        return created_at + timedelta(hours=self.deadline_hours)

    def next_attempt(
        self, created_at: datetime, attempts: int, now: datetime, rand: float
    ) -> datetime | None:
        """When to try again after a transient failure, or None when past the deadline."""
        deadline = self.deadline(created_at)
        if now >= deadline:
            return None
        # A last try lands exactly on the deadline rather than beyond it.
        return min(now + timedelta(seconds=self.backoff(attempts, rand)), deadline)

    def lease(self) -> timedelta:
        """How long a claimed row stays ours before another worker may take it."""
        return timedelta(seconds=self.lease_seconds)
