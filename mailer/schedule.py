"""When digests are due: periods, local send times and DST, as pure functions of a clock."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_WEEK_KEY = re.compile(r"^(\d{4})-W(\d{2})$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class Frequency(StrEnum):
    """How often a subscriber gets a digest."""

    DAILY = "daily"
    WEEKLY = "weekly"


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """One digest period: a local day (daily digests) or an ISO week (weekly digests).

    Stored and shown by its key, ``2026-11-22`` or ``2026-W47``; ``first_day`` is the day
    itself or the Monday of the week, so periods of one frequency order by time.
    """

    frequency: Frequency
    first_day: date

    @classmethod
    def containing(cls, frequency: Frequency, day: date) -> Period:
        """The period a local date falls in."""
        if frequency is Frequency.WEEKLY:
            return cls(frequency, day - timedelta(days=day.weekday()))
        return cls(frequency, day)

    @classmethod
    def parse(cls, key: str) -> Period:
        """The period of a stored key; ValueError for anything else."""
        week = _WEEK_KEY.match(key)
        if week is not None:
            monday = date.fromisocalendar(int(week.group(1)), int(week.group(2)), 1)
            return cls(Frequency.WEEKLY, monday)
        return cls(Frequency.DAILY, date.fromisoformat(key))

    @property
    def key(self) -> str:
        """``2026-11-22`` (daily) or ``2026-W47`` (weekly): how the outbox stores it."""
        if self.frequency is Frequency.WEEKLY:
            year, week, _ = self.first_day.isocalendar()
            return f"{year}-W{week:02d}"
        return self.first_day.isoformat()

    @property
    def label(self) -> str:
        """A human label: ``Sun 22 Nov 2026`` or ``week 47, 2026``."""
        if self.frequency is Frequency.WEEKLY:
            year, week, _ = self.first_day.isocalendar()
            return f"week {week}, {year}"
        day = self.first_day
        return f"{day:%a} {day.day} {day:%b %Y}"

    def shifted(self, steps: int) -> Period:
        """The period ``steps`` periods later (earlier when negative)."""
        days = 7 if self.frequency is Frequency.WEEKLY else 1
        return Period(self.frequency, self.first_day + timedelta(days=days * steps))

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Cadence:
    """A subscriber's delivery rhythm: how often, at what local time, in which zone."""

    frequency: Frequency
    send_time: str
    timezone: str
    weekday: int = 0  # weekly digests: 0 = Monday … 6 = Sunday

    @property
    def zone(self) -> ZoneInfo:
        """The subscriber's time zone."""
        return zone_for(self.timezone)

    @property
    def lookback(self) -> timedelta:
        """How far back a first digest reaches: one period."""
        return timedelta(days=7 if self.frequency is Frequency.WEEKLY else 1)


class HasCadence(Protocol):
    """Anything that carries a delivery rhythm: a subscriber, its row, its planning view."""

    @property
    def frequency(self) -> str: ...
    @property
    def send_time(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def weekday(self) -> int: ...


def cadence_of(subscriber: HasCadence) -> Cadence:
    """The delivery rhythm of a subscriber."""
    return Cadence(
        frequency=Frequency(subscriber.frequency),
        send_time=subscriber.send_time,
        timezone=subscriber.timezone,
        weekday=subscriber.weekday,
    )


@lru_cache(maxsize=1)
def _all_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_valid_timezone(name: str) -> bool:
    """True for an IANA time zone name this machine (or tzdata) knows."""
    return name in _all_zones()


@lru_cache(maxsize=1024)
def zone_for(name: str) -> ZoneInfo:
    """The ZoneInfo for a validated IANA name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def parse_send_time(value: str) -> time:
    """Parse ``HH:MM`` (24-hour clock) into a time; ValueError otherwise."""
    found = _HHMM.match(value.strip())
    if not found:
        raise ValueError(f"send time must be HH:MM on a 24-hour clock, not {value!r}")
    return time(int(found.group(1)), int(found.group(2)))


def parse_weekday(value: str | int) -> int:
    """A weekday as 0-6 from a number or an English name/prefix (``mon``, ``Monday``)."""
    if isinstance(value, int) or value.strip().isdigit():
        number = int(value)
        if 0 <= number <= 6:
            return number
        raise ValueError("weekday must be 0 (Monday) to 6 (Sunday)")
    text = value.strip().lower()
    for index, name in enumerate(WEEKDAYS):
        if len(text) >= 3 and name.startswith(text):
            return index
    raise ValueError(f"unknown weekday {value!r}; use monday … sunday")


def local_to_utc(day: date, send_time: str, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time.

    A time skipped by a spring-forward jump is moved to the first valid minute after the
    gap; a time that happens twice on a fall-back day resolves to its first occurrence.
    """
    wall = datetime.combine(day, parse_send_time(send_time))
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: the transition lies between the two readings; find its first minute.
    candidate = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    while candidate.astimezone(zone).replace(tzinfo=None) < wall:
        candidate += timedelta(minutes=1)
    return candidate


def period_day(cadence: Cadence, period: Period) -> date:
    """The local date a period's digest is sent on."""
    if period.frequency is Frequency.WEEKLY:
        return period.first_day + timedelta(days=cadence.weekday)
    return period.first_day


def due_at(cadence: Cadence, period: Period) -> datetime:
    """The UTC instant a period's digest becomes due."""
    return local_to_utc(period_day(cadence, period), cadence.send_time, cadence.zone)


def current_period(cadence: Cadence, now: datetime) -> Period:
    """The period that contains ``now`` in the subscriber's local time."""
    return Period.containing(cadence.frequency, now.astimezone(cadence.zone).date())


def latest_due_period(cadence: Cadence, now: datetime) -> Period:
    """The most recent period whose due instant is at or before ``now``."""
    period = current_period(cadence, now)
    while due_at(cadence, period) > now:
        period = period.shifted(-1)
    return period


def next_due_after(cadence: Cadence, after: datetime) -> datetime:
    """The first due instant strictly after ``after`` (when to look at this subscriber next)."""
    period = latest_due_period(cadence, after)
    candidate = period.shifted(1)
    while due_at(cadence, candidate) <= after:
        candidate = candidate.shifted(1)
    return due_at(cadence, candidate)


def first_due(cadence: Cadence, now: datetime) -> datetime:
    """When a newly active subscriber's first digest is due: this period's send time.

    If it has already passed, that is now: a new subscriber gets today's (or this week's)
    digest at once instead of waiting a whole period.
    """
    return due_at(cadence, current_period(cadence, now))
