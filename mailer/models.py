"""Frozen dataclasses and enums passed between stages: papers, subscribers, matches, digests.

``Frequency`` and ``Period`` live in ``schedule`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from mailer.schedule import Frequency, Period

__all__ = [
    "Digest",
    "DigestNote",
    "DigestStatus",
    "FetchOutcome",
    "Frequency",
    "Links",
    "Match",
    "Paper",
    "Period",
    "Span",
    "Subscriber",
    "SubscriberStatus",
]


class SubscriberStatus(StrEnum):
    """Where a subscriber is in their life cycle; only ``active`` ones get digests."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class DigestStatus(StrEnum):
    """The outbox life cycle: pending → sending → sent | retry | failed | bounced.

    ``skipped`` records a period that needed no email (no new papers, nothing matched).
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    BOUNCED = "bounced"
    SKIPPED = "skipped"


class FetchOutcome(StrEnum):
    """What one fetch of one source came to (stored in the fetch log)."""

    OK = "ok"  # papers were listed
    EMPTY = "empty"  # nothing listed on a day the source publishes
    NO_ANNOUNCEMENT = "no_announcement"  # nothing listed on a day it never publishes
    NOT_MODIFIED = "not_modified"  # the server said nothing changed since the last fetch
    ERROR = "error"  # the fetch failed; the log keeps the reason


class DigestNote(StrEnum):
    """Why an outbox row ended as it did, beside its status (stored in ``digest.note``)."""

    # Planning: a period that needed no email.
    NO_PAPERS = "no_papers"
    NO_MATCH = "no_match"
    COMBINED = "combined"  # folded into a later digest after downtime
    # Claiming: the subscriber stopped being active after the row was planned.
    SUBSCRIBER_PENDING = "subscriber_pending"
    SUBSCRIBER_PAUSED = "subscriber_paused"
    SUBSCRIBER_UNSUBSCRIBED = "subscriber_unsubscribed"
    SUBSCRIBER_BOUNCED = "subscriber_bounced"
    # Delivery: why a digest failed or bounced.
    BUILD_ERROR = "build_error"
    GAVE_UP = "gave_up"  # still failing temporarily at the retry deadline
    POLICY_REJECTION = "policy_rejection"  # refused by policy (5.7.x): not a dead mailbox
    REFUSED = "refused"  # refused for another reason
    HARD_BOUNCE = "hard_bounce"

    @classmethod
    def inactive(cls, status: SubscriberStatus) -> DigestNote:
        """The note of a row skipped because its subscriber is ``status``."""
        return cls(f"subscriber_{status.value}")


class SuppressionReason(StrEnum):
    """Why an address is on the suppression list."""

    HARD_BOUNCE = "hard_bounce"  # the mailbox does not exist: never mailed again
    COMPLAINT = "complaint"  # the reader reported a digest as spam: never mailed again
    OPERATOR = "operator"  # `mailer suppressions add`: never mailed again
    ERASED = "erased"  # a tombstone: never imported again; may sign up again (double opt-in)

    @property
    def blocks_mail(self) -> bool:
        """Whether nothing at all may be sent to the address (a tombstone only stops imports)."""
        return self is not SuppressionReason.ERASED


@dataclass(frozen=True, slots=True)
class Suppression:
    """One entry of the suppression list; ``email`` is None once the person was erased."""

    email_hash: str
    email: str | None
    reason: SuppressionReason
    created_at: datetime
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper as parsed from a source; ``id`` is set once it is stored."""

    key: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    arxiv_id: str | None = None
    url: str | None = None
    pdf_url: str | None = None
    hf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    thumbnail_url: str | None = None
    published: date | None = None
    upvotes: int | None = None
    comments: int | None = None
    source: str = ""
    id: int | None = None
    first_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A subscriber as the pipeline sees one."""

    id: int
    email: str
    status: SubscriberStatus
    profile: str
    frequency: Frequency
    send_time: str
    timezone: str
    weekday: int = 0
    created_at: datetime | None = None
    confirmed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Span:
    """A highlighted range ``[start, end)`` in a paper's title or abstract."""

    field: str  # "title" or "abstract"
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Match:
    """A paper that matched a profile, with why: the interests hit and where."""

    paper: Paper
    score: float
    interests: tuple[str, ...]
    terms: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()
    # Set only when the reader's votes ranked the digest: the learned contribution, and for
    # a "You may also like" paper (no interest matched) the liked example it resembles.
    learned: float | None = None
    resembles: str | None = None


@dataclass(frozen=True, slots=True)
class Digest:
    """What one subscriber gets for one period: the listed matches and how many more."""

    subscriber: Subscriber
    period: Period
    matches: tuple[Match, ...]
    total_matched: int
    considered: int
    message_id: str = ""

    @property
    def more(self) -> int:
        """How many matched papers did not fit in the digest."""
        return max(0, self.total_matched - len(self.matches))


@dataclass(frozen=True, slots=True)
class Links:
    """The personal links a digest carries (all absolute URLs)."""

    unsubscribe: str
    preferences: str
    view_online: str
    unsubscribe_mailto: str | None = None
    feed: str | None = None  # the subscriber's personal Atom feed (digests carry it)
    # Per listed paper id: its "more like this" and "less like this" URLs (HTML part), and
    # the page where the whole digest can be rated (text part).
    feedback: Mapping[int, tuple[str, str]] = field(default_factory=dict)
    rate: str | None = None
