"""Subscriber management shared by the CLI and the web form: validate, then store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.addresses import normalise_email
from mailer.context import Defaults
from mailer.db import digests as digest_repo
from mailer.db import subscribers as repo
from mailer.db import suppressions as suppression_repo
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.errors import InputError, NotFound
from mailer.matching import parse_profile
from mailer.models import Frequency, Subscriber, SubscriberStatus
from mailer.schedule import (
    cadence_of,
    current_period,
    due_at,
    first_due,
    is_valid_timezone,
    next_due_after,
    parse_send_time,
    parse_weekday,
)


@dataclass(frozen=True, slots=True)
class SubscriberInput:
    """What a person or operator asked for, not yet validated."""

    email: str
    profile: str
    frequency: str = "daily"
    send_time: str | None = None
    timezone: str | None = None
    weekday: str | int | None = None


def validate(
    raw: SubscriberInput,
    defaults: Defaults,
    now: datetime,
    *,
    normalise: Callable[[str], str] | None = None,
    check_profile: Callable[[str], object] = parse_profile,
) -> Subscriber:
    """A normalised pending subscriber (id 0); InputError naming the first bad field.

    ``normalise`` and ``check_profile`` may be swapped for cached equivalents (bulk import).
    """
    if normalise is None:
        email = normalise_email(raw.email, smtputf8=defaults.smtputf8)
    else:
        email = normalise(raw.email)
    profile = raw.profile.strip()
    check_profile(profile)  # raises ProfileError with position and reason
    try:
        frequency = Frequency(raw.frequency.strip().lower())
    except ValueError:
        raise InputError(f"frequency must be daily or weekly, not {raw.frequency!r}") from None
    send_time = (raw.send_time or defaults.send_time).strip()
    try:
        parse_send_time(send_time)
        weekday = parse_weekday(raw.weekday) if raw.weekday not in (None, "") else 0
    except ValueError as exc:
        raise InputError(str(exc)) from None
    timezone = (raw.timezone or defaults.timezone).strip()
    if not is_valid_timezone(timezone):
        raise InputError(f"unknown time zone {timezone!r}; use an IANA name like Europe/Berlin")
    return Subscriber(
        id=0,
        email=email,
        status=SubscriberStatus.PENDING,
        profile=profile,
        frequency=frequency,
        send_time=send_time,
        timezone=timezone,
        weekday=weekday,
        created_at=now,
    )


def add(
    session_factory: SessionFactory,
    raw: SubscriberInput,
    *,
    confirmed: bool,
    defaults: Defaults,
    now: datetime,
    reconsented: bool = False,
) -> Subscriber:
    """Validate and store a new subscriber; active at once when the operator vouches.

    An address that unsubscribed or was erased is refused unless ``reconsented`` says the
    person asked to come back; then the old row (or tombstone) is replaced.
    """
    subscriber = validate(raw, defaults, now)
    if confirmed:
        subscriber = _activated(subscriber, now)
    due = first_due(cadence_of(subscriber), now) if confirmed else None
    with session_factory.begin() as session:
        _clear_the_way(session, subscriber.email, reconsented=reconsented)
        new_id = repo.insert_subscriber(session, subscriber, due)
    return replace(subscriber, id=new_id)


def _clear_the_way(session: Session, email: str, *, reconsented: bool) -> None:
    """Refuse a duplicate, a suppressed or a departed address; on renewed consent, forget the
    old record (a suppression is lifted only by `mailer suppressions remove`)."""
    existing = repo.get_row_by_email(session, email)
    if existing is not None and existing.status != SubscriberStatus.UNSUBSCRIBED.value:
        raise InputError(f"{email} is already a subscriber ({existing.status})")
    suppressed = suppression_repo.find(session, email)
    if suppressed is not None and suppressed.reason.blocks_mail:
        raise InputError(
            f"{email} is on the suppression list ({suppressed.reason.value}); "
            "`mailer suppressions remove` it first if it may be mailed again"
        )
    erased = suppressed is not None
    if (existing is not None or erased) and not reconsented:
        what = "unsubscribed" if existing is not None else "was erased"
        raise InputError(
            f"{email} {what}; add it again only with --reconsented "
            "if the person asked to subscribe again"
        )
    if existing is not None:
        repo.delete_row(session, existing)
    if erased:
        suppression_repo.lift(session, email, only_tombstone=True)


def _activated(subscriber: Subscriber, now: datetime) -> Subscriber:
    return replace(subscriber, status=SubscriberStatus.ACTIVE, confirmed_at=now)


def activate_row(row: SubscriberRow, now: datetime) -> None:
    """Mark a pending subscriber confirmed; their first digest is due this period."""
    row.status = SubscriberStatus.ACTIVE.value
    row.confirmed_at = row.confirmed_at or now
    row.next_due_at = first_due(cadence_of(row), now)


def get(session_factory: SessionFactory, email: str) -> Subscriber:
    """One subscriber by address; NotFound when there is none."""
    normalised = normalise_email(email)
    with session_factory() as session:
        row = repo.get_row_by_email(session, normalised)
        if row is None:
            raise NotFound(f"no subscriber {normalised}")
        return repo.to_subscriber(row)


# --- changing an existing subscriber --------------------------------------------------------

SubscriberRef = str | int  # an address or a subscriber id


@dataclass(frozen=True, slots=True)
class Changes:
    """Fields to change on a subscriber; None leaves a field as it is."""

    profile: str | None = None
    frequency: str | None = None
    weekday: str | int | None = None
    send_time: str | None = None
    timezone: str | None = None


def _row(session: Session, ref: SubscriberRef) -> SubscriberRow:
    if isinstance(ref, int):
        row = repo.get_row(session, ref)
        if row is None:
            raise NotFound(f"no subscriber with id {ref}")
        return row
    normalised = normalise_email(ref)
    row = repo.get_row_by_email(session, normalised)
    if row is None:
        raise NotFound(f"no subscriber {normalised}")
    return row


def _next_due(session: Session, row: SubscriberRow, now: datetime) -> datetime:
    """When an (again) active subscriber is next due under their current cadence.

    Like ``first_due``, except that a subscriber who already had a digest planned after this
    period's due instant (say, daily until today, now weekly) waits for the next period.
    """
    cadence = cadence_of(row)
    due = first_due(cadence, now)
    last = digest_repo.last_window_end(session, row.id)
    if last is not None and last >= due_at(cadence, current_period(cadence, now)):
        return next_due_after(cadence, now)
    return due


def update(
    session_factory: SessionFactory, ref: SubscriberRef, changes: Changes, now: datetime
) -> Subscriber:
    """Change profile, frequency, weekday, send time or time zone, validated like ``validate``."""
    with session_factory.begin() as session:
        row = _row(session, ref)
        raw = SubscriberInput(
            email=row.email,
            profile=row.profile if changes.profile is None else changes.profile,
            frequency=changes.frequency or row.frequency,
            send_time=changes.send_time or row.send_time,
            timezone=changes.timezone or row.timezone,
            weekday=row.weekday if changes.weekday in (None, "") else changes.weekday,
        )
        valid = validate(raw, Defaults(row.send_time, row.timezone), now)
        before = cadence_of(row)
        row.profile, row.frequency = valid.profile, valid.frequency.value
        row.send_time, row.timezone, row.weekday = valid.send_time, valid.timezone, valid.weekday
        if row.status == SubscriberStatus.ACTIVE.value and cadence_of(row) != before:
            row.next_due_at = _next_due(session, row, now)
        return repo.to_subscriber(row)


def pause(session_factory: SessionFactory, ref: SubscriberRef, now: datetime) -> Subscriber:
    """Stop an active subscriber's digests until ``resume`` (pausing twice is harmless)."""
    with session_factory.begin() as session:
        row = _row(session, ref)
        if row.status not in (SubscriberStatus.ACTIVE.value, SubscriberStatus.PAUSED.value):
            raise InputError(f"{row.email} is {row.status}; only active subscribers can pause")
        row.status = SubscriberStatus.PAUSED.value
        row.next_due_at = None
        return repo.to_subscriber(row)


def resume(session_factory: SessionFactory, ref: SubscriberRef, now: datetime) -> Subscriber:
    """Restart a paused subscriber; their next digest is due this period (see ``_next_due``)."""
    with session_factory.begin() as session:
        row = _row(session, ref)
        if row.status not in (SubscriberStatus.ACTIVE.value, SubscriberStatus.PAUSED.value):
            raise InputError(f"{row.email} is {row.status}; only paused subscribers can resume")
        if row.status == SubscriberStatus.PAUSED.value:
            row.status = SubscriberStatus.ACTIVE.value
            row.next_due_at = _next_due(session, row, now)
        return repo.to_subscriber(row)


def unsubscribe(session_factory: SessionFactory, ref: SubscriberRef, now: datetime) -> Subscriber:
    """Stop every digest for good (idempotent: the first unsubscribe time is kept)."""
    with session_factory.begin() as session:
        row = _row(session, ref)
        if row.status != SubscriberStatus.UNSUBSCRIBED.value:
            row.status = SubscriberStatus.UNSUBSCRIBED.value
            row.unsubscribed_at = now
        row.next_due_at = None
        return repo.to_subscriber(row)


def remove(session_factory: SessionFactory, ref: SubscriberRef, now: datetime) -> str:
    """Erase a subscriber's personal data; returns the address.

    Only the address's hash stays: as a tombstone, or as its suppression entry if it has one.
    """
    with session_factory.begin() as session:
        row = _row(session, ref)
        email = row.email
        repo.delete_row(session, row)
        suppression_repo.forget_address(session, email, now)
    return email
