"""Repository functions for subscribers: rows in, frozen ``Subscriber`` dataclasses out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    any_,
    bindparam,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session

from mailer.db.retention import delete_unused_profiles
from mailer.db.tables import (
    BounceReportRow,
    DigestRow,
    FeedbackRow,
    SubscriberRow,
    SuppressionRow,
)
from mailer.models import Frequency, Subscriber, SubscriberStatus


def to_subscriber(row: SubscriberRow) -> Subscriber:
    """The dataclass view of a subscriber row."""
    return Subscriber(
        id=row.id,
        email=row.email,
        status=SubscriberStatus(row.status),
        profile=row.profile,
        frequency=Frequency(row.frequency),
        send_time=row.send_time,
        timezone=row.timezone,
        weekday=row.weekday,
        created_at=row.created_at,
        confirmed_at=row.confirmed_at,
    )


def get_row_by_email(session: Session, email: str) -> SubscriberRow | None:
    """The subscriber row for a normalised address, if any."""
    return session.scalars(select(SubscriberRow).where(SubscriberRow.email == email)).first()


def insert_subscriber(
    session: Session, subscriber: Subscriber, next_due_at: datetime | None
) -> int:
    """Insert a new subscriber row and return its id (the caller commits)."""
    assert subscriber.created_at is not None
    row = SubscriberRow(
        email=subscriber.email,
        status=subscriber.status.value,
        profile=subscriber.profile,
        frequency=subscriber.frequency.value,
        send_time=subscriber.send_time,
        timezone=subscriber.timezone,
        weekday=subscriber.weekday,
        next_due_at=next_due_at,
        created_at=subscriber.created_at,
        confirmed_at=subscriber.confirmed_at,
        hard_bounces=0,
        soft_bounces=0,
    )
    session.add(row)
    session.flush()
    return row.id


def list_subscribers(
    session: Session, status: SubscriberStatus | None = None, search: str | None = None
) -> Iterator[Subscriber]:
    """Subscribers ordered by id, optionally by status and an address substring."""
    query = select(SubscriberRow).order_by(SubscriberRow.id)
    if status is not None:
        query = query.where(SubscriberRow.status == status.value)
    if search:
        query = query.where(SubscriberRow.email.contains(search.lower(), autoescape=True))
    for row in session.scalars(query.execution_options(yield_per=1000)):
        yield to_subscriber(row)


def iter_rows(session: Session, email: str | None = None) -> Iterator[SubscriberRow]:
    """Every subscriber row in id order, streamed (or the one with this normalised address)."""
    query = select(SubscriberRow).order_by(SubscriberRow.id)
    if email is not None:
        query = query.where(SubscriberRow.email == email)
    yield from session.scalars(query.execution_options(yield_per=1000))


def pending_unmailed(session: Session, emails: Sequence[str]) -> list[tuple[int, str]]:
    """(id, address) of those of these addresses that are pending and were never mailed a
    confirmation."""
    found: list[tuple[int, str]] = []
    for start in range(0, len(emails), LOOKUP_CHUNK):
        chunk = emails[start : start + LOOKUP_CHUNK]
        query = select(SubscriberRow.id, SubscriberRow.email).where(
            among(session, SubscriberRow.email, chunk),
            SubscriberRow.status == SubscriberStatus.PENDING.value,
            SubscriberRow.confirmation_sent_at.is_(None),
        )
        found.extend((id_, email) for id_, email in session.execute(query))
    return found


def mark_confirmation_sent(session: Session, ids: Sequence[int], now: datetime) -> None:
    """Record that these subscribers were mailed their confirmation link."""
    if ids:
        session.execute(
            update(SubscriberRow).where(SubscriberRow.id.in_(ids)).values(confirmation_sent_at=now)
        )


def count_by_status(session: Session) -> dict[str, int]:
    """How many subscribers are in each status."""
    rows = session.execute(
        select(SubscriberRow.status, func.count()).group_by(SubscriberRow.status)
    ).all()
    return {str(status): int(count) for status, count in rows}


@dataclass(frozen=True, slots=True)
class DueSubscriber:
    """What planning reads of a subscriber: no ORM row crosses into the pipeline."""

    id: int
    email: str
    profile: str
    profile_compiled: str | None
    frequency: str
    send_time: str
    timezone: str
    weekday: int
    created_at: datetime
    confirmed_at: datetime | None
    next_due_at: datetime | None


_DUE_COLUMNS = (
    SubscriberRow.id,
    SubscriberRow.email,
    SubscriberRow.profile,
    SubscriberRow.profile_compiled,
    SubscriberRow.frequency,
    SubscriberRow.send_time,
    SubscriberRow.timezone,
    SubscriberRow.weekday,
    SubscriberRow.created_at,
    SubscriberRow.confirmed_at,
    SubscriberRow.next_due_at,
)


def _active_chunk(
    session: Session,
    limit: int,
    order: Sequence[InstrumentedAttribute[Any]],
    *criteria: ColumnElement[bool],
    claim: bool = False,
) -> list[DueSubscriber]:
    query = (
        select(*_DUE_COLUMNS)
        .where(SubscriberRow.status == SubscriberStatus.ACTIVE.value, *criteria)
        .order_by(*order)
        .limit(limit)
    )
    if claim:
        # PostgreSQL: rows another planner holds are passed over, not waited for, and stay
        # held until the transaction that writes their digests commits or rolls back. SQLite
        # has no row locks (SQLAlchemy leaves the clause out); one writer at a time there.
        query = query.with_for_update(skip_locked=True)
    return [DueSubscriber(*row) for row in session.execute(query)]


_DUE_ORDER = (SubscriberRow.next_due_at, SubscriberRow.id)


def due_subscribers(
    session: Session,
    now: datetime,
    after: DueSubscriber | None,
    limit: int,
    *,
    claim: bool = False,
) -> list[DueSubscriber]:
    """Active subscribers whose next digest is due, longest due first (then by id), one
    chunk at a time after ``after``, the last of the previous chunk (None: from the start).

    ``claim``: lock the chunk for this transaction, skipping rows another planner holds.
    """
    # Read off the (next_due_at, id) index from the cursor on: a chunk costs its own rows,
    # however many are due, with no sort and no walk over rows already planned (issue 17).
    criteria = [SubscriberRow.next_due_at <= now]
    if after is not None and after.next_due_at is not None:
        criteria.append(tuple_(*_DUE_ORDER) > (after.next_due_at, after.id))
    return _active_chunk(session, limit, _DUE_ORDER, *criteria, claim=claim)


def active_subscribers(
    session: Session, after_id: int, limit: int, *, claim: bool = False
) -> list[DueSubscriber]:
    """All active subscribers in id order, one chunk at a time (for ``send --now``)."""
    by_id = (SubscriberRow.id,)
    return _active_chunk(session, limit, by_id, SubscriberRow.id > after_id, claim=claim)


def due_subscriber(session: Session, email: str) -> DueSubscriber | None:
    """The planning view of one subscriber by normalised address (for previews)."""
    row = session.execute(select(*_DUE_COLUMNS).where(SubscriberRow.email == email)).first()
    return DueSubscriber(*row) if row is not None else None


_SUBSCRIBER = SubscriberRow.metadata.tables["subscriber"]
# Built once with bind parameters: one executemany per chunk of planned subscribers.
_SET_NEXT_DUE = (
    update(_SUBSCRIBER)
    .where(_SUBSCRIBER.c.id == bindparam("s_id"))
    .values(next_due_at=bindparam("s_next"))
)
_SET_COMPILED = (
    update(_SUBSCRIBER)
    .where(_SUBSCRIBER.c.id == bindparam("s_id"))
    .values(profile_compiled=bindparam("s_compiled"))
)


def set_next_due(session: Session, next_due: Mapping[int, datetime]) -> None:
    """When to look at each of these subscribers next (one statement, many rows)."""
    if next_due:
        params = [{"s_id": sid, "s_next": at} for sid, at in next_due.items()]
        session.execute(_SET_NEXT_DUE, params)


def store_compiled_profiles(session: Session, compiled: Mapping[int, str]) -> None:
    """Keep freshly compiled profiles beside their text, so they are parsed once."""
    if compiled:
        params = [{"s_id": sid, "s_compiled": text} for sid, text in compiled.items()]
        session.execute(_SET_COMPILED, params)


def get_row(session: Session, subscriber_id: int) -> SubscriberRow | None:
    """The subscriber row with this id, if any."""
    return session.get(SubscriberRow, subscriber_id)


def delete_row(session: Session, row: SubscriberRow) -> None:
    """Delete a subscriber; their digests, digest papers and votes go with them."""
    # Bounce reports stay for the daily rates, without anything that names the person.
    session.execute(
        update(BounceReportRow)
        .where(BounceReportRow.subscriber_id == row.id)
        .values(subscriber_id=None, digest_id=None, detail=None)
        .execution_options(synchronize_session=False)
    )
    # Bulk deletes by key so the database's cascades do the work, not the ORM's row loading.
    session.execute(delete(FeedbackRow).where(FeedbackRow.subscriber_id == row.id))
    profiles = select(DigestRow.profile_id).where(
        DigestRow.subscriber_id == row.id, DigestRow.profile_id.is_not(None)
    )
    planned_with = {pid for pid in session.scalars(profiles.distinct()) if pid is not None}
    session.execute(delete(DigestRow).where(DigestRow.subscriber_id == row.id))
    delete_unused_profiles(session, planned_with)
    session.delete(row)
    session.flush()


def email_hash(email: str) -> str:
    """The tombstone key of a normalised address: its SHA-256, hex."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()


def suppression_reason(session: Session, email: str) -> str | None:
    """Why a normalised address is on the suppression list (erased, complaint...), if it is."""
    row = session.get(SuppressionRow, email_hash(email))
    return row.reason if row is not None else None


LOOKUP_CHUNK = 5000


def among(
    session: Session, column: InstrumentedAttribute[str], values: Sequence[str]
) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, not thousands."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))
    return column.in_(values)


def statuses(session: Session, emails: Sequence[str]) -> dict[str, str]:
    """The status of each of these normalised addresses that is already stored."""
    found: dict[str, str] = {}
    for start in range(0, len(emails), LOOKUP_CHUNK):
        chunk = emails[start : start + LOOKUP_CHUNK]
        query = select(SubscriberRow.email, SubscriberRow.status).where(
            among(session, SubscriberRow.email, chunk)
        )
        found.update((email, status) for email, status in session.execute(query))
    return found


_BATCH = 2000
COPY_COLUMNS = (
    "email", "status", "profile", "profile_compiled", "frequency", "send_time", "timezone",
    "weekday", "next_due_at", "created_at", "confirmed_at", "hard_bounces", "soft_bounces",
)  # fmt: skip
"""The columns ``bulk_insert`` writes, in COPY order."""


def bulk_insert(session: Session, rows: Iterable[dict[str, object]]) -> None:
    """Insert subscriber rows (dicts keyed by ``COPY_COLUMNS``): COPY on PostgreSQL, else
    Core executemany in batches; in the session's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        _copy(session, rows)
        return
    batch: list[dict[str, object]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == _BATCH:
            session.execute(_SUBSCRIBER.insert(), batch)
            batch = []
    if batch:
        session.execute(_SUBSCRIBER.insert(), batch)


def _copy(session: Session, rows: Iterable[dict[str, object]]) -> None:
    """PostgreSQL COPY in the session's transaction: 100k rows in about a second."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY subscriber ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row([row[name] for name in COPY_COLUMNS])
