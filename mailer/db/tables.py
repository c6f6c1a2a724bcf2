"""SQLAlchemy table definitions: the store's schema (Alembic migrations must match it)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names make migrations reproducible on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT keys on PostgreSQL, but SQLite only auto-increments a plain INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SubscriberRow(Base):
    """A person who signed up (or was added by the operator)."""

    __tablename__ = "subscriber"
    __table_args__ = (
        # Planners claim due subscribers in (next_due_at, id) order off this index: a chunk
        # reads its own rows, never every due row (see subscribers.due_subscribers).
        Index("ix_subscriber_due", "next_due_at", "id"),
        # Ids are never reused (AUTOINCREMENT on SQLite): links in old emails carry the id and
        # must not reach whoever is added after the person they were sent to was erased.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    profile: Mapped[str] = mapped_column(Text)
    # The parsed profile as JSON together with the text it was parsed from, so the planner
    # never re-parses an unchanged profile and never trusts a stale one.
    profile_compiled: Mapped[str | None] = mapped_column(Text)
    frequency: Mapped[str] = mapped_column(String(8), default="daily")
    send_time: Mapped[str] = mapped_column(String(5), default="08:00")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    weekday: Mapped[int] = mapped_column(SmallInteger, default=0)
    # The next instant (UTC) a digest becomes due; NULL when none will be (not active).
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)
    last_bounce_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_bounce_reply: Mapped[str | None] = mapped_column(Text)


class SuppressionRow(Base):
    """An address never to be mailed again, or only the hash of one once it is erased.

    ``reason``: hard_bounce, complaint, operator; or erased (a tombstone: the person may come
    back through the signup form, never through an import). Keyed by the SHA-256 of the
    normalised address, so a row outlives the address itself.
    """

    __tablename__ = "suppression"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))  # NULL once the person is erased
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)  # the bounce reply, or the operator's note
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BounceReportRow(Base):
    """A bounce or complaint that arrived by mail and was proven and applied."""

    __tablename__ = "bounce_report"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # SHA-256 of the message as read: reading the same message again changes nothing.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # hard, soft, policy, complaint
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("subscriber.id", ondelete="SET NULL"), index=True
    )
    digest_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("digest.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str | None] = mapped_column(String(32))  # 5.1.1, or a feedback type
    code: Mapped[int | None] = mapped_column(SmallInteger)
    detail: Mapped[str | None] = mapped_column(Text)
    counted: Mapped[bool] = mapped_column(Boolean, default=True)  # a soft bounce after success: no


class PaperRow(Base):
    """A paper, one row per identity whatever the number of sources that listed it."""

    __tablename__ = "paper"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    arxiv_id: Mapped[str | None] = mapped_column(String(32), index=True)
    title: Mapped[str] = mapped_column(Text)
    abstract: Mapped[str] = mapped_column(Text, default="")
    authors: Mapped[list[str]] = mapped_column(JSON, default=list)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    url: Mapped[str | None] = mapped_column(Text)
    pdf_url: Mapped[str | None] = mapped_column(Text)
    hf_url: Mapped[str | None] = mapped_column(Text)
    code_url: Mapped[str | None] = mapped_column(Text)
    project_url: Mapped[str | None] = mapped_column(Text)
    thumbnail_url: Mapped[str | None] = mapped_column(Text)
    published: Mapped[date | None] = mapped_column(Date)
    upvotes: Mapped[int | None] = mapped_column(Integer)
    comments: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SourceStateRow(Base):
    """Per source: conditional-GET validators and the outcome of the last fetch."""

    __tablename__ = "source_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_day: Mapped[date | None] = mapped_column(Date)
    items_seen: Mapped[int] = mapped_column(BigInteger, default=0)


class FetchRunRow(Base):
    """One fetch of one source for one day: what came of it (feeds `why` and `stats`)."""

    __tablename__ = "fetch_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(512), index=True)
    day: Mapped[date | None] = mapped_column(Date, index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # ok, empty, not_modified, error
    new: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


# The outbox statuses a worker may still claim (pending, retry, and sending once its lease
# runs out), as the claiming index's predicate. Spelled as ORs of equalities, not IN: SQLite
# uses a partial index only when a term of the query's WHERE is one of the predicate's terms.
CLAIMABLE = text("status = 'pending' OR status = 'retry' OR status = 'sending'")


class DigestRow(Base):
    """The outbox: one row per (subscriber, period), written before any sending."""

    __tablename__ = "digest"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "period"),
        # Claiming reads due rows in (next_attempt_at, id) order off this index: see outbox.
        # Only rows that may still be claimed are in it: a final row (sent, skipped, ...) is
        # never claimed again, and leaving those out keeps the index the size of one day's
        # queue instead of the whole retention (about 60-110 bytes per stored digest on PG).
        Index(
            "ix_digest_claim",
            "status",
            "next_attempt_at",
            "id",
            sqlite_where=CLAIMABLE,
            postgresql_where=CLAIMABLE,
        ),
        # Where a subscriber's next window starts (the latest window_end), and which of their
        # digests' windows can hold a given paper ("never the same paper twice").
        Index("ix_digest_subscriber_window", "subscriber_id", "window_end"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscriber.id", ondelete="CASCADE")
    )
    period: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(32))  # why skipped: no_papers, no_match
    message_id: Mapped[str] = mapped_column(String(255))
    paper_count: Mapped[int] = mapped_column(Integer, default=0)
    matched_count: Mapped[int] = mapped_column(Integer, default=0)
    considered_count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_code: Mapped[int | None] = mapped_column(SmallInteger)
    last_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the digest lists, packed (mailer.db.listing): paper ids and scores in rank order,
    # and the learned values of a digest ranked by votes. NULL when it lists nothing.
    listing: Mapped[bytes | None] = mapped_column(LargeBinary)
    # The profile text it was planned with: why each paper matched is recomputed from it.
    profile_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("digest_profile.id"), index=True
    )


class DigestProfileRow(Base):
    """A profile text some digest was planned with, stored once however many digests use it.

    Rendering re-matches a digest's papers against it (``mailer.db.reasons``), so a retry
    after the subscriber edits their profile renders the same email. Keyed by the SHA-256 of
    the text; ``mailer prune`` deletes the texts no digest refers to any more.
    """

    __tablename__ = "digest_profile"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)


class FeedbackRow(Base):
    """A reader's example: a vote on a stored paper, or an entry seeded from their library.

    One row per (subscriber, example key): voting again replaces the vote (the last one wins).
    A seeded entry keeps its own title and abstract; a vote on a stored paper reads the
    paper's, so it goes when the paper does.
    """

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("subscriber_id", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscriber.id", ondelete="CASCADE")
    )
    paper_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("paper.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(255))
    vote: Mapped[int] = mapped_column(SmallInteger)  # +1 more like this, -1 less like this
    origin: Mapped[str] = mapped_column(String(16))  # email, web, seed, operator
    title: Mapped[str | None] = mapped_column(Text)
    abstract: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
