"""Periods, local send times and DST as pure functions of the clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mailer.models import Frequency
from mailer.schedule import (
    Cadence,
    Period,
    due_at,
    first_due,
    latest_due_period,
    local_to_utc,
    next_due_after,
    parse_weekday,
    zone_for,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def key(frequency: Frequency, day: date) -> str:
    return Period.containing(frequency, day).key


def test_period_keys() -> None:
    assert key(Frequency.DAILY, date(2026, 11, 22)) == "2026-11-22"
    assert key(Frequency.WEEKLY, date(2026, 11, 22)) == "2026-W47"
    assert key(Frequency.WEEKLY, date(2027, 1, 1)) == "2026-W53"


@pytest.mark.parametrize("key", ["2026-11-22", "2026-W47", "2026-W53", "2020-W01", "2024-02-29"])
def test_period_keys_round_trip(key: str) -> None:
    assert Period.parse(key).key == key
    assert str(Period.parse(key)) == key


@pytest.mark.parametrize("bad", ["", "2026-W54", "2026-W1", "2026-13-01", "W47", "2026-11-22x"])
def test_malformed_period_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(bad)


def test_periods_order_shift_and_label() -> None:
    week = Period.parse("2026-W53")
    assert week.shifted(1).key == "2027-W01" and week.shifted(-1) < week
    assert week.label == "week 53, 2026"
    day = Period.parse("2026-11-22")
    assert day.shifted(-1).key == "2026-11-21" and day.shifted(-1) < day
    assert day.label == "Sun 22 Nov 2026"


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("UTC", utc(2026, 11, 22, 8, 0)),
        ("Asia/Tokyo", utc(2026, 11, 21, 23, 0)),
        ("America/Los_Angeles", utc(2026, 11, 22, 16, 0)),
        ("Asia/Kathmandu", utc(2026, 11, 22, 2, 15)),
        ("Australia/Lord_Howe", utc(2026, 11, 21, 21, 0)),  # UTC+11 in (southern) summer
    ],
)
def test_local_send_time_in_each_zone(zone: str, expected: datetime) -> None:
    assert local_to_utc(date(2026, 11, 22), "08:00", zone_for(zone)) == expected


def test_spring_forward_gap_moves_to_first_valid_minute() -> None:
    # Berlin skips 02:00-03:00 on 2026-03-29: 02:30 does not exist; 03:00 CEST is 01:00 UTC.
    assert local_to_utc(date(2026, 3, 29), "02:30", zone_for("Europe/Berlin")) == utc(
        2026, 3, 29, 1, 0
    )
    # New York skips 02:00-03:00 on 2026-03-08: 03:00 EDT is 07:00 UTC.
    assert local_to_utc(date(2026, 3, 8), "02:15", zone_for("America/New_York")) == utc(
        2026, 3, 8, 7, 0
    )


def test_fall_back_repeat_resolves_to_first_occurrence() -> None:
    # Berlin repeats 02:00-03:00 on 2026-10-25; the first 02:30 is CEST, 00:30 UTC.
    assert local_to_utc(date(2026, 10, 25), "02:30", zone_for("Europe/Berlin")) == utc(
        2026, 10, 25, 0, 30
    )


def test_latest_due_and_next_due() -> None:
    cadence = Cadence(Frequency.DAILY, "08:00", "Asia/Tokyo")
    now = utc(2026, 11, 22, 0, 0)  # 09:00 in Tokyo: today's digest is due
    assert latest_due_period(cadence, now).key == "2026-11-22"
    assert next_due_after(cadence, now) == utc(2026, 11, 22, 23, 0)
    earlier = utc(2026, 11, 21, 22, 0)  # 07:00 in Tokyo: yesterday's was the last due
    assert latest_due_period(cadence, earlier).key == "2026-11-21"


def test_weekly_due_on_the_chosen_weekday() -> None:
    cadence = Cadence(Frequency.WEEKLY, "09:30", "Europe/Berlin", weekday=0)
    assert due_at(cadence, Period.parse("2026-W48")) == utc(2026, 11, 23, 8, 30)
    assert latest_due_period(cadence, utc(2026, 11, 22, 12, 0)).key == "2026-W47"
    assert next_due_after(cadence, utc(2026, 11, 22, 12, 0)) == utc(2026, 11, 23, 8, 30)


def test_first_due_is_this_periods_send_time() -> None:
    cadence = Cadence(Frequency.DAILY, "08:00", "UTC")
    assert first_due(cadence, utc(2026, 11, 22, 10, 0)) == utc(2026, 11, 22, 8, 0)
    assert first_due(cadence, utc(2026, 11, 22, 6, 0)) == utc(2026, 11, 22, 8, 0)


def test_parse_weekday() -> None:
    assert parse_weekday("Monday") == 0
    assert parse_weekday("sun") == 6
    assert parse_weekday("3") == 3
    with pytest.raises(ValueError, match="unknown weekday"):
        parse_weekday("someday")
