"""The suppression list as operators and the bounce processor use it: list, add, remove."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.addresses import normalise_email
from mailer.db import subscribers as repo
from mailer.db import suppressions as suppression_repo
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.errors import InputError, NotFound
from mailer.models import SubscriberStatus, Suppression, SuppressionReason

_STILL_MAILED = (
    SubscriberStatus.ACTIVE.value,
    SubscriberStatus.PAUSED.value,
    SubscriberStatus.PENDING.value,
)


@dataclass(frozen=True, slots=True)
class Added:
    """What ``add`` did: whether the entry is new, and the subscriber it stopped, if any."""

    email: str
    new: bool
    stopped: str | None  # the subscriber's status before, when they were still being mailed


def entries(
    session_factory: SessionFactory, reason: SuppressionReason | None = None
) -> list[Suppression]:
    """The whole list, oldest first (erased addresses show only their hash)."""
    with session_factory() as session:
        return list(suppression_repo.entries(session, reason))


def parse_reason(value: str | None) -> SuppressionReason | None:
    """A ``--reason`` value; InputError listing the valid ones otherwise."""
    if value is None:
        return None
    try:
        return SuppressionReason(value.strip().lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(r.value for r in SuppressionReason)
        raise InputError(f"unknown reason {value!r}; use one of {names}") from None


def add(
    session_factory: SessionFactory, email: str, now: datetime, note: str | None = None
) -> Added:
    """Never mail this address again (the operator's decision); its subscriber is unsubscribed."""
    address = normalise_email(email)
    with session_factory.begin() as session:
        new = suppression_repo.suppress(
            session, address, SuppressionReason.OPERATOR, now, note or None
        )
        row = repo.get_row_by_email(session, address)
        stopped = row.status if row is not None and row.status in _STILL_MAILED else None
        if row is not None:
            stop(row, SubscriberStatus.UNSUBSCRIBED, now)
    return Added(address, new, stopped)


def remove(session_factory: SessionFactory, email: str) -> Suppression:
    """Take an address off the list (its subscriber, if any, must sign up again)."""
    address = normalise_email(email)
    with session_factory.begin() as session:
        lifted = suppression_repo.lift(session, address)
    if lifted is None:
        raise NotFound(f"{address} is not on the suppression list")
    return lifted


def stop(row: SubscriberRow, status: SubscriberStatus, now: datetime) -> bool:
    """Take a subscriber out of every mailing; True when they were still being mailed."""
    was_mailed = row.status in _STILL_MAILED
    if was_mailed:
        row.status = status.value
        if status is SubscriberStatus.UNSUBSCRIBED:
            row.unsubscribed_at = row.unsubscribed_at or now
    row.next_due_at = None
    return was_mailed


def suppress_subscriber(
    session: Session,
    row: SubscriberRow,
    reason: SuppressionReason,
    now: datetime,
    detail: str | None = None,
) -> None:
    """Put a subscriber's address on the list, in the caller's transaction."""
    suppression_repo.suppress(session, row.email, reason, now, detail)
