"""The publishing calendar and hf-daily catch-up of missed days."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from mailer.sources import (
    FetchResult,
    HttpPolicy,
    Validators,
    catch_up_days,
    expected_announcement,
    make_source,
)
from mailer.sources.calendar import thanksgiving
from tests.helpers.http_server import Canned, LocalHTTPServer, RecordedRequest

STORED = (Path(__file__).parent / "data" / "sources" / "hf_daily_2025-08-06.json").read_bytes()


@pytest.mark.parametrize(
    ("kind", "day", "expected"),
    [
        ("arxiv", date(2025, 8, 4), True),  # Monday mailing (Sunday evening announcement)
        ("arxiv", date(2025, 8, 8), True),  # Friday mailing (Thursday evening)
        ("arxiv", date(2025, 8, 9), False),  # Saturday
        ("arxiv", date(2025, 8, 10), False),  # Sunday
        ("arxiv", date(2026, 1, 1), False),  # New Year's Day
        ("arxiv", date(2025, 11, 27), False),  # Thanksgiving
        ("arxiv", date(2025, 12, 25), False),  # Christmas
        ("arxiv:cs.LG+cs.CL", date(2025, 8, 6), True),  # a source name works too
        ("hf-daily", date(2025, 8, 8), True),
        ("hf-daily", date(2025, 8, 9), False),
        ("hf-daily", date(2025, 8, 10), False),
        ("rss", date(2025, 8, 9), True),
        ("file", date(2025, 12, 25), True),
    ],
)
def test_expected_announcement(kind: str, day: date, expected: bool) -> None:
    assert expected_announcement(kind, day) is expected


def test_extra_holidays_and_thanksgiving() -> None:
    assert thanksgiving(2025) == date(2025, 11, 27)
    assert thanksgiving(2026) == date(2026, 11, 26)
    assert not expected_announcement("arxiv", date(2025, 7, 4), extra_holidays={date(2025, 7, 4)})


def test_catch_up_days() -> None:
    day = date(2025, 8, 10)
    assert catch_up_days(None, day) == (day,)
    assert catch_up_days(day, day) == (day,)
    assert catch_up_days(date(2025, 8, 8), day) == (date(2025, 8, 9), day)
    week = catch_up_days(date(2025, 7, 1), day)
    assert week == tuple(day - timedelta(days=n) for n in range(6, -1, -1))
    assert len(catch_up_days(date(2025, 1, 1), day, limit=3)) == 3


def _by_date(request: RecordedRequest) -> Canned:
    if request.query.get("date") == "2025-08-06":
        return Canned(STORED, content_type="application/json", headers={"ETag": '"d6"'})
    if request.query.get("date") == "2025-08-07":
        return Canned(status=304) if request.header("If-None-Match") else Canned(b"[]")
    return Canned(b"[]", content_type="application/json")


def run_catch_up(server: LocalHTTPServer, since: date | None) -> list[FetchResult]:
    source = make_source("hf-daily", hf_api_url=server.url("/api"), policy=HttpPolicy())

    async def go() -> list[FetchResult]:
        async with httpx.AsyncClient(timeout=5) as client:
            stream = source.fetch_since(client, Validators('"old"'), date(2025, 8, 7), since)
            return [result async for result in stream]

    return asyncio.run(go())


def test_hf_catches_up_missed_days_oldest_first() -> None:
    with LocalHTTPServer() as server:
        server.route_fn("/api", _by_date)
        results = run_catch_up(server, date(2025, 8, 4))
        dates = [r.query["date"] for r in server.requests]
        conditional = [r.header("If-None-Match") for r in server.requests]
    assert dates == ["2025-08-05", "2025-08-06", "2025-08-07"]
    assert [r.day for r in results] == [date(2025, 8, 5), date(2025, 8, 6), date(2025, 8, 7)]
    assert [len(r.papers) for r in results] == [0, 6, 0]
    assert results[1].validators.etag == '"d6"'
    # Stored validators describe the newest day only, so only that request is conditional.
    assert conditional == [None, None, '"old"']
    assert results[2].not_modified


def test_first_fetch_without_history_fetches_one_day() -> None:
    with LocalHTTPServer() as server:
        server.route_fn("/api", _by_date)
        results = run_catch_up(server, None)
    assert len(results) == 1 and results[0].day == date(2025, 8, 7)


def test_dayless_sources_fetch_once(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"title": "x"}\n')
    source = make_source(f"file:{path}")

    async def go() -> list[FetchResult]:
        async with httpx.AsyncClient() as client:
            stream = source.fetch_since(client, Validators(), date(2025, 8, 7), date(2025, 8, 1))
            return [r async for r in stream]

    (result,) = asyncio.run(go())
    assert [p.title for p in result.papers] == ["x"]
