"""arxiv:CATS: the announcement feed parsed and fetched politely from a real local server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from mailer.errors import PayloadError, SourceSpecError
from mailer.sources import FetchResult, Throttle, Validators, make_source
from mailer.sources.arxiv import parse
from mailer.sources.http import HttpPolicy
from tests.helpers.http_server import Canned, LocalHTTPServer

DATA = Path(__file__).parent / "data" / "sources"
FEED = (DATA / "arxiv_cs.LG+cs.CL.atom").read_bytes()
ATOM = "application/atom+xml; charset=utf-8"
DAY = date(2025, 8, 6)


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


def fetch(server: LocalHTTPServer, spec: str = "arxiv:cs.LG+cs.CL") -> FetchResult:
    source = make_source(spec, arxiv_feed_url=server.url("/atom"), arxiv_throttle=Throttle(0))

    async def go() -> FetchResult:
        async with httpx.AsyncClient(timeout=5) as client:
            return await source.fetch(client, Validators(), DAY)

    return asyncio.run(go())


def test_parse_takes_new_and_cross_by_default() -> None:
    result, day = parse(FEED)
    assert day == DAY
    assert [p.key for p in result.papers] == ["2508.03694", "2508.02222", "hep-th/9901001"]
    first = result.papers[0]
    assert first.title == "Learning Diffusion Policies from Demonstrations with World Models"
    assert first.abstract.startswith("We study how world models")  # announce prefix removed
    assert first.authors == ("Ada Moreau", "Sergei Lewin", "Joël Martin")
    assert first.categories == ("cs.LG", "cs.RO")
    assert first.url == "https://arxiv.org/abs/2508.03694"
    assert first.pdf_url == "https://arxiv.org/pdf/2508.03694"
    assert first.published == DAY
    cross = result.papers[1]
    assert cross.title == (
        "$\\mathcal{O}(n)$ Attention for Speech & Text: Beyond <b>Quadratic</b> Cost"
    )
    assert cross.authors == ("Grace Okafor", "Alan Tanaka")


def test_parse_counts_bad_entries_but_not_replacements() -> None:
    result, _ = parse(FEED)
    assert result.skip_reasons == (
        "entry 5: duplicate of 2508.03694",
        "entry 6: no arXiv id (missing)",
        "entry 7: 2508.04444: no title",
    )
    replaced, _ = parse(FEED, types=frozenset({"replace", "replace-cross"}))
    assert [p.key for p in replaced.papers] == ["2401.00001", "2312.09999"]


def test_parse_empty_and_error_feeds() -> None:
    result, day = parse((DATA / "arxiv_empty.atom").read_bytes())
    assert result.papers == () and result.skip_reasons == ()
    assert day == date(2025, 8, 9)  # 04:00 UTC is midnight US Eastern
    with pytest.raises(PayloadError, match=r"arXiv error: incorrect id format for cs\.XX"):
        parse((DATA / "arxiv_error.atom").read_bytes())
    with pytest.raises(PayloadError, match="invalid XML"):
        parse(FEED[:2000])
    with pytest.raises(PayloadError, match="not an Atom feed"):
        parse(b"<rss version='2.0'><channel/></rss>")


def test_fetch_builds_the_feed_url_and_reports_the_day(server: LocalHTTPServer) -> None:
    server.route("/atom/cs.LG+cs.CL", Canned(FEED, content_type=ATOM, headers={"ETag": '"a"'}))
    result = fetch(server)
    assert len(result.papers) == 3 and result.skipped == 3
    assert result.day == DAY and result.validators.etag == '"a"'
    assert server.requests[0].path == "/atom/cs.LG+cs.CL"
    assert (server.requests[0].header("User-Agent") or "").startswith("mailer/")


def test_fetch_with_replacements_spec(server: LocalHTTPServer) -> None:
    server.route("/atom/cs.LG", Canned(FEED, content_type=ATOM))
    result = fetch(server, "arxiv:cs.LG?announce=new+replace")
    assert [p.key for p in result.papers] == ["2508.03694", "2401.00001"]
    assert (
        make_source("arxiv:cs.LG?announce=replace+new").name == "arxiv:cs.LG?announce=new+replace"
    )
    assert make_source("arxiv:cs.LG").name == "arxiv:cs.LG"


def test_fetch_rejects_html(server: LocalHTTPServer) -> None:
    server.route("/atom/cs.LG+cs.CL", Canned(b"<html/>", content_type="text/html"))
    with pytest.raises(PayloadError, match="expected xml or atom but got text/html"):
        fetch(server)


def test_requests_are_spaced_by_the_shared_throttle(server: LocalHTTPServer) -> None:
    """Three concurrent fetches through one throttle wait for slots one interval apart.

    The clock and the sleep are injected (the clock stands still), so the test asserts the
    schedule each request waited for before reaching the server, not wall time.
    """
    server.route("/atom/cs.LG", Canned(FEED, content_type=ATOM))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    throttle = Throttle(3.0, clock=lambda: 1000.0)
    source = make_source(
        "arxiv:cs.LG",
        arxiv_feed_url=server.url("/atom"),
        arxiv_throttle=throttle,
        policy=HttpPolicy(sleep=sleep),
    )

    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await asyncio.gather(*(source.fetch(client, Validators(), DAY) for _ in range(3)))

    asyncio.run(go())
    assert len(server.requests) == 3
    assert sorted(waits) == [3.0, 6.0]  # the first goes at once, then one slot each


def test_throttle_reserves_slots_with_an_injected_clock() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = Throttle(3.0, clock=lambda: now[0])

    async def go() -> None:
        for _ in range(3):
            await throttle.wait(sleep)
        now[0] += 10
        await throttle.wait(sleep)

    asyncio.run(go())
    assert slept == [3.0, 3.0]  # the first and the rested fourth request go at once


def test_default_arxiv_sources_share_one_throttle() -> None:
    first = make_source("arxiv:cs.LG")
    second = make_source("arxiv:cs.CL")
    assert first.throttle is second.throttle  # type: ignore[attr-defined]
    assert first.throttle.interval == 3.0  # type: ignore[attr-defined]


@pytest.mark.parametrize("spec", ["arxiv:", "arxiv:cs LG", "arxiv:cs.LG?announce=maybe"])
def test_bad_arxiv_specs(spec: str) -> None:
    with pytest.raises(SourceSpecError, match=r"^source 'arxiv:"):
        make_source(spec)


def test_a_feed_of_5000_entries_parses_quickly() -> None:
    entry = (
        "<entry><id>oai:arXiv.org:2508.{n:05d}v1</id><title>Paper {n} on Topic</title>"
        "<summary>arXiv:2508.{n:05d}v1 Announce Type: new Abstract: Abstract {n}.</summary>"
        '<category term="cs.LG"/><published>2025-08-06T00:00:00-04:00</published>'
        "<arxiv:announce_type>new</arxiv:announce_type><dc:creator>A One, B Two</dc:creator>"
        "</entry>"
    )
    head, tail = FEED.decode().split("<entry>", 1)[0], "</feed>"
    feed = head + "".join(entry.format(n=n) for n in range(5000)) + tail
    started = time.perf_counter()
    result, day = parse(feed.encode(), types=frozenset({"new"}), source="arxiv:cs.LG")
    elapsed = time.perf_counter() - started
    assert len(result.papers) == 5000 and result.skipped == 0 and day == DAY
    assert result.papers[4999].key == "2508.04999"
    assert elapsed < 5.0, elapsed
