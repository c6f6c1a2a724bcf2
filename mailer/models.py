"""Frozen dataclasses passed between stages: papers, subscribers, matches, digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum


class SubscriberStatus(StrEnum):
    """Where a subscriber is in their life cycle; only ``active`` ones get digests."""

    PENDING = "pending"
    ACTIVE = "active"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class Frequency(StrEnum):
    """How often a subscriber gets a digest."""

    DAILY = "daily"
    WEEKLY = "weekly"


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


@dataclass(frozen=True, slots=True)
class Digest:
    """What one subscriber gets for one period: the listed matches and how many more."""

    subscriber: Subscriber
    period: str
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
