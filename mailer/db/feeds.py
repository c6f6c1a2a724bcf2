"""Queries behind a subscriber's personal feed: the papers of their sent digests, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.db.digests import load_digests
from mailer.db.tables import DigestRow
from mailer.models import DigestStatus, Match

FEED_ENTRIES = 100
"""Papers a feed lists at most (a feed reader keeps what it has already read)."""


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a conditional GET compares: the newest sent digest and how many were sent."""

    digests: int
    last_digest_id: int | None
    last_sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One paper of one sent digest, with why it matched (as the email showed it)."""

    match: Match
    digest_id: int
    period: str
    sent_at: datetime


def _sent(subscriber_id: int) -> Any:
    return (DigestRow.subscriber_id == subscriber_id) & (
        DigestRow.status == DigestStatus.SENT.value
    )


def feed_state(session: Session, subscriber_id: int) -> FeedState:
    """The newest sent digest of a subscriber (one indexed aggregate, for ETag and 304s)."""
    count, last_id, last_sent = session.execute(
        select(func.count(), func.max(DigestRow.id), func.max(DigestRow.sent_at)).where(
            _sent(subscriber_id)
        )
    ).one()
    return FeedState(int(count or 0), last_id, last_sent)


def feed_items(session: Session, subscriber_id: int, limit: int = FEED_ENTRIES) -> list[FeedItem]:
    """The papers of the subscriber's sent digests: newest digest first, in digest order.

    Each digest lists at least one paper, so the newest ``limit`` sent digests that list any
    hold every entry the feed shows; why each matched is recomputed as the email showed it.
    """
    newest = session.execute(
        select(DigestRow.id, DigestRow.period, DigestRow.sent_at)
        .where(_sent(subscriber_id), DigestRow.sent_at.is_not(None), DigestRow.listing.is_not(None))
        .order_by(DigestRow.sent_at.desc(), DigestRow.id.desc())
        .limit(limit)
    ).all()
    loaded = load_digests(session, [digest_id for digest_id, _, _ in newest])
    items: list[FeedItem] = []
    for digest_id, period, sent_at in newest:
        assert sent_at is not None  # filtered above
        stored = loaded.get(digest_id)
        for match in stored.matches if stored is not None else ():
            items.append(FeedItem(match, digest_id, period, sent_at))
    return items[:limit]
