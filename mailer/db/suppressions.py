"""The suppression list in SQL: addresses never to be mailed, and tombstones of erased ones."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailer.db.subscribers import LOOKUP_CHUNK, among, email_hash
from mailer.db.tables import SuppressionRow
from mailer.models import Suppression, SuppressionReason

DETAIL_LIMIT = 1000


def _to_suppression(row: SuppressionRow) -> Suppression:
    return Suppression(
        email_hash=row.email_hash,
        email=row.email,
        reason=SuppressionReason(row.reason),
        created_at=row.created_at,
        detail=row.detail,
    )


def find(session: Session, email: str) -> Suppression | None:
    """The entry for a normalised address (by its hash, so erased ones are found too)."""
    row = session.get(SuppressionRow, email_hash(email))
    return _to_suppression(row) if row is not None else None


def suppress(
    session: Session,
    email: str,
    reason: SuppressionReason,
    now: datetime,
    detail: str | None = None,
) -> bool:
    """Put an address on the list; False when it was already there (its first reason stays).

    A tombstone becomes a full entry: an erased person's address that bounced or complained
    after coming back is suppressed like anyone's.
    """
    row = session.get(SuppressionRow, email_hash(email))
    clipped = detail[:DETAIL_LIMIT] if detail else None
    if row is None:
        session.add(
            SuppressionRow(
                email_hash=email_hash(email),
                email=email,
                reason=reason.value,
                detail=clipped,
                created_at=now,
            )
        )
        session.flush()
        return True
    if row.reason != SuppressionReason.ERASED.value:
        row.email = row.email or email
        return False
    row.email, row.reason, row.detail, row.created_at = email, reason.value, clipped, now
    return True


def suppress_quietly(
    connection: Connection,
    email: str,
    reason: SuppressionReason,
    now: datetime,
    detail: str | None = None,
) -> None:
    """``suppress`` on a Core connection, keeping an entry already there (the outbox's path)."""
    insert = sqlite_insert if connection.dialect.name == "sqlite" else postgresql_insert
    values = {
        "email_hash": email_hash(email),
        "email": email,
        "reason": reason.value,
        "detail": detail[:DETAIL_LIMIT] if detail else None,
        "created_at": now,
    }
    connection.execute(insert(SuppressionRow).values(values).on_conflict_do_nothing())


def lift(session: Session, email: str, *, only_tombstone: bool = False) -> Suppression | None:
    """Take an address off the list (``only_tombstone``: only an erasure's); what was there."""
    row = session.get(SuppressionRow, email_hash(email))
    if row is None or (only_tombstone and row.reason != SuppressionReason.ERASED.value):
        return None
    found = _to_suppression(row)
    session.execute(delete(SuppressionRow).where(SuppressionRow.email_hash == row.email_hash))
    return found


def forget_address(session: Session, email: str, now: datetime) -> None:
    """After an erasure keep only the hash: of a suppression, or as a new tombstone."""
    row = session.get(SuppressionRow, email_hash(email))
    if row is None:
        session.add(
            SuppressionRow(
                email_hash=email_hash(email),
                email=None,
                reason=SuppressionReason.ERASED.value,
                detail=None,
                created_at=now,
            )
        )
        return
    row.email, row.detail = None, None  # the detail may quote the address (a bounce reply)


def entries(session: Session, reason: SuppressionReason | None = None) -> Iterator[Suppression]:
    """Every entry, oldest first, optionally of one reason."""
    query = select(SuppressionRow).order_by(SuppressionRow.created_at, SuppressionRow.email_hash)
    if reason is not None:
        query = query.where(SuppressionRow.reason == reason.value)
    for row in session.scalars(query.execution_options(yield_per=1000)):
        yield _to_suppression(row)


def reasons_for(session: Session, emails: Iterable[str]) -> dict[str, SuppressionReason]:
    """The suppression reason of each of these normalised addresses that has one (bulk)."""
    by_hash = {email_hash(email): email for email in emails}
    wanted = list(by_hash)
    found: dict[str, SuppressionReason] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        query = select(SuppressionRow.email_hash, SuppressionRow.reason).where(
            among(session, SuppressionRow.email_hash, chunk)
        )
        for key, reason in session.execute(query):
            found[by_hash[key]] = SuppressionReason(reason)
    return found
