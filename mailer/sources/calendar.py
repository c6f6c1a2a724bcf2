"""When sources publish: a pure ``expected_announcement`` so an empty day is not a failure.

arXiv announces Sunday to Thursday at 20:00 US Eastern; each announcement carries the next
day's date (Monday to Friday), and that mailing date is the ``day`` used here. arXiv skips its
holidays; the rules below cover the ones it observes every year (New Year's Day, US
Thanksgiving, Christmas Day) and ``extra_holidays`` takes the rest of a year's published schedule.
Hugging Face Daily Papers lists papers on weekdays; its weekend lists are empty.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import date, timedelta

_THURSDAY = 3


def thanksgiving(year: int) -> date:
    """US Thanksgiving: the fourth Thursday of November."""
    first = date(year, 11, 1)
    offset = (_THURSDAY - first.weekday()) % 7
    return first + timedelta(days=offset + 21)


def arxiv_holidays(year: int) -> frozenset[date]:
    """The mailing dates arXiv skips every year (best effort; see the module docstring)."""
    return frozenset({date(year, 1, 1), thanksgiving(year), date(year, 12, 25)})


def expected_announcement(
    source_kind: str, day: date, extra_holidays: Collection[date] = ()
) -> bool:
    """Whether ``source_kind`` ("arxiv", "hf-daily", ...) normally publishes for ``day``.

    Kinds without a calendar (rss, file) always return True.
    """
    kind = source_kind.split(":", 1)[0]
    if kind == "arxiv":
        weekday_mailing = day.weekday() < 5
        return weekday_mailing and day not in arxiv_holidays(day.year) and day not in extra_holidays
    if kind == "hf-daily":
        return day.weekday() < 5
    return True


def catch_up_days(since: date | None, day: date, limit: int = 7) -> tuple[date, ...]:
    """The days to fetch: those after ``since`` up to ``day``, oldest first, at most ``limit``.

    ``since`` is the last day fetched successfully (None: never, so only ``day``).
    """
    if since is None or since >= day:
        return (day,)
    start = max(since + timedelta(days=1), day - timedelta(days=limit - 1))
    return tuple(_days(start, day))


def _days(start: date, end: date) -> Iterator[date]:
    current = start
    while current <= end:
        yield current
        current += timedelta(days=1)
