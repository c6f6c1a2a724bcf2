"""The outbox in SQL: claim due digests, record each outcome, release what was not sent."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from mailer.db.suppressions import suppress_quietly
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.models import DigestNote, DigestStatus, SubscriberStatus, SuppressionReason

_REPLY_LIMIT = 1000  # SMTP replies can be long; the row keeps what explains the outcome


@dataclass(frozen=True, slots=True)
class ClaimedDigest:
    """An outbox row this worker holds a lease on; ``attempts`` counts this try."""

    digest_id: int
    subscriber_id: int
    email: str
    period: str
    message_id: str
    attempts: int
    created_at: datetime
    soft_bounces: int = 0  # the subscriber's count when claimed: a delivery resets it


@dataclass(frozen=True, slots=True)
class Claim:
    """One claiming round: the rows to send, and how many were skipped (subscriber not active)."""

    digests: tuple[ClaimedDigest, ...]
    skipped: int


def _due(now: datetime, status: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether a row is due at ``now``, reading its status from ``status``."""
    waiting = and_(
        status.in_([DigestStatus.PENDING.value, DigestStatus.RETRY.value]),
        or_(DigestRow.next_attempt_at.is_(None), DigestRow.next_attempt_at <= now),
    )
    # A row left in 'sending' by a worker that died: its lease ran out.
    abandoned = and_(status == DigestStatus.SENDING.value, DigestRow.lease_until < now)
    return or_(waiting, abandoned)


def claim(session: Session, now: datetime, lease_until: datetime, limit: int) -> Claim:
    """Take up to ``limit`` due rows: mark them 'sending' with a lease, in one short transaction."""
    with session.begin():
        if session.get_bind().dialect.name == "postgresql":
            ids = _lock_due_ids(session, now, limit)
            _mark_sending(session, ids, lease_until)
        else:
            ids = _swap_due_ids(session, now, lease_until, limit)
        if not ids:
            return Claim((), 0)
        rows = session.execute(
            select(
                DigestRow.id,
                DigestRow.subscriber_id,
                SubscriberRow.email,
                SubscriberRow.status,
                DigestRow.period,
                DigestRow.message_id,
                DigestRow.attempts,
                DigestRow.created_at,
                SubscriberRow.soft_bounces,
            )
            .join(SubscriberRow, SubscriberRow.id == DigestRow.subscriber_id)
            .where(DigestRow.id.in_(ids))
            .order_by(DigestRow.next_attempt_at.asc().nulls_first(), DigestRow.id)
        ).all()
        active = SubscriberStatus.ACTIVE.value
        _skip_inactive(session, [(row.id, row.status) for row in rows if row.status != active])
    claimed = tuple(
        ClaimedDigest(
            row.id,
            row.subscriber_id,
            row.email,
            row.period,
            row.message_id,
            row.attempts,
            row.created_at,
            row.soft_bounces or 0,
        )
        for row in rows
        if row.status == active
    )
    return Claim(claimed, len(rows) - len(claimed))


def _due_slices(now: datetime) -> list[ColumnElement[bool]]:
    """What ``_due`` asks, cut into slices that each read in claiming order straight off an index.

    One query over all of ``_due`` had to collect and sort every due row to find the first
    hundred (the OR across statuses and the NULL test defeat the index), once per claimed
    batch: a run over N due rows cost O(N) per batch, O(N^2) in all. Each slice is a range
    of ``ix_digest_claim`` (status, next_attempt_at, id), so its first rows are found at once.
    Within a slice next_attempt_at is all NULL or never NULL, so a slice's order is the same
    on SQLite (NULLs first) and PostgreSQL (NULLs last).
    """
    abandoned = and_(  # rows of a worker that died: its lease ran out
        DigestRow.status == DigestStatus.SENDING.value, DigestRow.lease_until < now
    )
    slices: list[ColumnElement[bool]] = []
    for status in (DigestStatus.PENDING.value, DigestStatus.RETRY.value):
        slices.append(and_(DigestRow.status == status, DigestRow.next_attempt_at.is_(None)))
        slices.append(and_(DigestRow.status == status, DigestRow.next_attempt_at <= now))
    slices.append(and_(abandoned, DigestRow.next_attempt_at.is_(None)))
    slices.append(and_(abandoned, DigestRow.next_attempt_at.is_not(None)))
    return slices


def _slice_queries(
    now: datetime, limit: int, skip: Collection[int] = ()
) -> list[Select[datetime | None, int]]:
    queries = []
    for where in _due_slices(now):
        query = select(DigestRow.next_attempt_at, DigestRow.id).where(where)
        if skip:
            query = query.where(DigestRow.id.not_in(skip))
        queries.append(query.order_by(DigestRow.next_attempt_at, DigestRow.id).limit(limit))
    return queries


def _lock_due_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """PostgreSQL: lock the first ``limit`` due rows that no other worker has locked.

    The first due rows are found without locks, then locked with ``SKIP LOCKED``; the ones
    another worker holds (or has just taken) are passed over and the next ones looked up,
    until there are ``limit`` or no more. So workers take disjoint rows without queueing
    behind each other, and no claim locks rows it will not take: another worker would skip
    those and could find nothing to do.
    """
    taken: list[int] = []
    looked_at: set[int] = set()  # taken, held by another worker, or no longer due
    while len(taken) < limit:
        candidates = _first_due(session, now, limit - len(taken), looked_at)
        if not candidates:
            break
        locking = (
            select(DigestRow.id)
            .where(DigestRow.id.in_(candidates), _due(now, _DIGEST.c.status))
            .with_for_update(skip_locked=True)
        )
        got = list(session.scalars(locking))
        taken.extend(got)
        looked_at.update(candidates)
    return taken


def _first_due(session: Session, now: datetime, limit: int, skip: set[int]) -> list[int]:
    """The ids of the first ``limit`` due rows not in ``skip``: NULL next attempt first."""
    found: list[tuple[bool, datetime, int]] = []
    for query in _slice_queries(now, limit, skip):
        found.extend((at is not None, at or now, row_id) for at, row_id in session.execute(query))
    found.sort()
    return [row_id for *_, row_id in found[:limit]]


def _swap_due_ids(session: Session, now: datetime, lease_until: datetime, limit: int) -> list[int]:
    """SQLite: mark the first ``limit`` due rows sending, in one statement.

    One UPDATE finds the rows and flips them while holding the write lock, and re-checks
    "still due" as it does, so two processes can never both take the same row.
    """
    slices = [query.subquery() for query in _slice_queries(now, limit)]
    merged = union_all(*(select(s.c.next_attempt_at, s.c.id) for s in slices)).subquery()
    first = select(merged.c.id).order_by(merged.c.next_attempt_at, merged.c.id).limit(limit)
    # coalesce() of the never-null status keeps SQLite from planning this UPDATE off
    # ix_digest_claim (a walk through every due row) instead of the primary key.
    unindexed_status = func.coalesce(DigestRow.status, "")
    stmt = (
        update(DigestRow)
        .where(DigestRow.id.in_(first), _due(now, unindexed_status))
        .values(
            status=DigestStatus.SENDING.value,
            lease_until=lease_until,
            attempts=DigestRow.attempts + 1,
        )
        .returning(DigestRow.id)
        .execution_options(synchronize_session=False)
    )
    return list(session.scalars(stmt))


def _mark_sending(session: Session, ids: list[int], lease_until: datetime) -> None:
    session.execute(
        update(DigestRow)
        .where(DigestRow.id.in_(ids))
        .values(
            status=DigestStatus.SENDING.value,
            lease_until=lease_until,
            attempts=DigestRow.attempts + 1,
        )
        .execution_options(synchronize_session=False)
    )


def _skip_inactive(session: Session, inactive: list[tuple[int, str]]) -> None:
    # A subscriber who paused, left or bounced after the row was queued gets nothing.
    by_note: dict[DigestNote, list[int]] = {}
    for digest_id, status in inactive:
        by_note.setdefault(DigestNote.inactive(SubscriberStatus(status)), []).append(digest_id)
    for note, ids in by_note.items():
        session.execute(
            update(DigestRow)
            .where(DigestRow.id.in_(ids))
            .values(
                status=DigestStatus.SKIPPED.value,
                note=note.value,
                lease_until=None,
                attempts=DigestRow.attempts - 1,  # nothing was attempted
            )
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What happened to one claimed digest, ready to be written."""

    digest: ClaimedDigest
    status: DigestStatus
    code: int | None = None
    reply: str | None = None
    next_attempt_at: datetime | None = None
    note: DigestNote | None = None
    hard_bounce: bool = False  # counts against the subscriber's bounce limit
    soft_bounce: bool = False  # a 4xx reply about this message: counted, never acted on


def record(
    connection: Connection, outcomes: Sequence[Outcome], now: datetime, bounce_limit: int
) -> list[bool]:
    """Write outcomes in one transaction; for each, whether the row was still ours to write.

    On a Core connection (outside any transaction), not a Session: this runs once for every
    message or two (a send slot is freed only once its outcome is committed), and the
    Session's bookkeeping cost more than the UPDATE itself. See ``recorder.OutcomeWriter``.
    """
    with connection.begin():
        if connection.dialect.name == "postgresql":
            # Skip the WAL flush wait: a worker crash loses nothing committed; only a crash of
            # PostgreSQL itself could forget the last instants, and that resends, never loses.
            connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
        written = [_write_digest(connection, outcome, now) for outcome in outcomes]
        for outcome, ok in zip(outcomes, written, strict=True):
            if ok and (outcome.hard_bounce or outcome.soft_bounce):
                _count_bounce(connection, outcome, now, bounce_limit)
        _reset_soft_bounces(connection, outcomes, written)
    return written


def _reset_soft_bounces(
    connection: Connection, outcomes: Sequence[Outcome], written: Sequence[bool]
) -> None:
    """Soft bounces count only until a delivery succeeds: a sent digest starts them over.

    Only for subscribers who had some when claimed, so the usual batch costs no statement.
    """
    ids = [
        outcome.digest.subscriber_id
        for outcome, ok in zip(outcomes, written, strict=True)
        if ok and outcome.digest.soft_bounces and outcome.status is DigestStatus.SENT
    ]
    if ids:
        connection.execute(
            update(SubscriberRow).where(SubscriberRow.id.in_(ids)).values(soft_bounces=0)
        )


_DIGEST = DigestRow.metadata.tables["digest"]
# Built once with bind parameters: compiled once, cheap per row on the hot path.
_MARK_SENT = (
    update(_DIGEST)
    .where(_DIGEST.c.id == bindparam("d_id"), _DIGEST.c.status != DigestStatus.SENT.value)
    .values(
        status=DigestStatus.SENT.value,
        lease_until=None,
        sent_at=bindparam("d_at"),
        last_code=bindparam("d_code"),
        last_reply=bindparam("d_reply"),
    )
)
_MARK_OTHER = (
    update(_DIGEST)
    .where(
        _DIGEST.c.id == bindparam("d_id"),
        _DIGEST.c.status == DigestStatus.SENDING.value,
        _DIGEST.c.attempts == bindparam("d_attempts"),
    )
    .values(
        status=bindparam("d_status"),
        lease_until=None,
        next_attempt_at=bindparam("d_next"),
        note=bindparam("d_note"),
        last_code=bindparam("d_code"),
        last_reply=bindparam("d_reply"),
    )
)


def _write_digest(connection: Connection, outcome: Outcome, now: datetime) -> bool:
    claimed = outcome.digest
    params: dict[str, Any] = {
        "d_id": claimed.digest_id,
        "d_code": outcome.code,
        "d_reply": outcome.reply[:_REPLY_LIMIT] if outcome.reply else outcome.reply,
    }
    if outcome.status is DigestStatus.SENT:
        # The message went out: that is the truth even if our lease had lapsed meanwhile.
        result = connection.execute(_MARK_SENT, {**params, "d_at": now})
    else:
        # Only the holder of this attempt may write: a reclaimed row belongs to its new worker.
        params.update(
            d_attempts=claimed.attempts,
            d_status=outcome.status.value,
            d_next=outcome.next_attempt_at,
            d_note=outcome.note.value if outcome.note else None,
        )
        result = connection.execute(_MARK_OTHER, params)
    return bool(result.rowcount == 1)


def _count_bounce(
    connection: Connection, outcome: Outcome, now: datetime, bounce_limit: int
) -> None:
    subscriber = SubscriberRow.id == outcome.digest.subscriber_id
    if outcome.soft_bounce:
        connection.execute(
            update(SubscriberRow)
            .where(subscriber)
            .values(soft_bounces=SubscriberRow.soft_bounces + 1)
        )
    if not outcome.hard_bounce:
        return
    connection.execute(
        update(SubscriberRow)
        .where(subscriber)
        .values(
            hard_bounces=SubscriberRow.hard_bounces + 1,
            last_bounce_at=now,
            last_bounce_reply=(outcome.reply or "")[:_REPLY_LIMIT],
        )
    )
    bounced = connection.execute(
        update(SubscriberRow)
        .where(
            subscriber,
            SubscriberRow.hard_bounces >= bounce_limit,
            SubscriberRow.status.in_(_BOUNCEABLE),
        )
        .values(status=SubscriberStatus.BOUNCED.value, next_due_at=None)
        .returning(SubscriberRow.email)
    ).scalar()
    if bounced is not None:  # a dead mailbox is never mailed again, not even by a new signup
        suppress_quietly(connection, bounced, SuppressionReason.HARD_BOUNCE, now, outcome.reply)


_BOUNCEABLE = [
    SubscriberStatus.ACTIVE.value,
    SubscriberStatus.PAUSED.value,
    SubscriberStatus.PENDING.value,
]


def renew(session: Session, digests: Sequence[ClaimedDigest], lease_until: datetime) -> set[int]:
    """Extend the lease on rows still held by this attempt; returns the ids that were.

    A row another worker has taken over (its lease lapsed and it was claimed again, so its
    attempt count moved on) or that is no longer ``sending`` is not touched: it is not ours.
    """
    if not digests:
        return set()
    held = [(d.digest_id, d.attempts) for d in digests]
    renewed: set[int] = set()
    with session.begin():
        for start in range(0, len(held), 500):
            stmt = (
                update(DigestRow)
                .where(
                    tuple_(DigestRow.id, DigestRow.attempts).in_(held[start : start + 500]),
                    DigestRow.status == DigestStatus.SENDING.value,
                )
                .values(lease_until=lease_until)
                .returning(DigestRow.id)
                .execution_options(synchronize_session=False)
            )
            renewed.update(session.scalars(stmt))
    return renewed


def release(session: Session, digests: Sequence[ClaimedDigest]) -> int:
    """Hand claimed-but-unsent rows back as due now, undoing their attempt count."""
    released = 0
    with session.begin():
        for claimed in digests:
            result = session.execute(
                update(DigestRow)
                .where(
                    DigestRow.id == claimed.digest_id,
                    DigestRow.status == DigestStatus.SENDING.value,
                    DigestRow.attempts == claimed.attempts,
                )
                .values(
                    status=DigestStatus.PENDING.value,
                    lease_until=None,
                    attempts=DigestRow.attempts - 1,
                )
                .execution_options(synchronize_session=False)
            )
            released += int(getattr(result, "rowcount", 0) == 1)
    return released
