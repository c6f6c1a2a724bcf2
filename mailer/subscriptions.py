"""Subscriber management shared by the CLI and the web form: validate, then store."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from mailer.addresses import normalise_email
from mailer.db import subscribers as repo
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.errors import InputError, NotFound
from mailer.matching import parse_profile
from mailer.models import Frequency, Subscriber, SubscriberStatus
from mailer.schedule import (
    Cadence,
    first_due,
    is_valid_timezone,
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


@dataclass(frozen=True, slots=True)
class Defaults:
    """Operator defaults for fields a new subscriber leaves out."""

    send_time: str = "08:00"
    timezone: str = "UTC"


def validate(raw: SubscriberInput, defaults: Defaults, now: datetime) -> Subscriber:
    """A normalised pending subscriber (id 0); InputError naming the first bad field."""
    email = normalise_email(raw.email)
    profile = raw.profile.strip()
    parse_profile(profile)  # raises ProfileError with position and reason
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


def cadence_of(subscriber: Subscriber | SubscriberRow) -> Cadence:
    """The delivery rhythm of a subscriber (dataclass or row)."""
    return Cadence(
        frequency=Frequency(subscriber.frequency),
        send_time=subscriber.send_time,
        timezone=subscriber.timezone,
        weekday=subscriber.weekday,
    )


def add(
    session_factory: SessionFactory,
    raw: SubscriberInput,
    *,
    confirmed: bool,
    defaults: Defaults,
    now: datetime,
) -> Subscriber:
    """Validate and store a new subscriber; active at once when the operator vouches."""
    subscriber = validate(raw, defaults, now)
    with session_factory.begin() as session:
        if repo.get_row_by_email(session, subscriber.email) is not None:
            raise InputError(f"{subscriber.email} is already a subscriber")
        if confirmed:
            subscriber = _activated(subscriber, now)
        due = first_due(cadence_of(subscriber), now) if confirmed else None
        new_id = repo.insert_subscriber(session, subscriber, due)
    return replace(subscriber, id=new_id)


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
