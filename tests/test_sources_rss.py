"""rss:URL: any RSS/Atom feed through feedparser, fetched from a real local server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from mailer.errors import FetchError, PayloadError, SourceSpecError
from mailer.sources import FetchResult, HttpPolicy, Validators, make_source
from mailer.sources.rss import parse
from tests.helpers.http_server import Canned, LocalHTTPServer

pytest.importorskip("feedparser")

DATA = Path(__file__).parent / "data" / "sources"
FEED = (DATA / "rss_lab_blog.xml").read_bytes()
RSS = "application/rss+xml"


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


async def _no_sleep(seconds: float) -> None:
    pass


def fetch(server: LocalHTTPServer, validators: Validators | None = None) -> FetchResult:
    policy = HttpPolicy(sleep=_no_sleep)
    source = make_source(f"rss:{server.url('/feed.xml')}", policy=policy)

    async def go() -> FetchResult:
        async with httpx.AsyncClient(timeout=5) as client:
            return await source.fetch(client, validators or Validators(), date(2025, 8, 6))

    return asyncio.run(go())


def test_parse_identity_from_arxiv_link_guid_or_link() -> None:
    result = parse(FEED, "rss:x")
    assert [p.key for p in result.papers] == [
        "2508.03694",  # the link reveals an arXiv id: one identity across sources
        "rss:https://lab.example.org/papers/grounded-agents",
        "url:https://lab.example.org/papers/no-guid",
    ]
    assert result.skip_reasons == ("entry 4: no title", "entry 5: no id or link")


def test_parse_fields() -> None:
    arxiv, plain, _ = parse(FEED, "rss:x").papers
    assert arxiv.arxiv_id == "2508.03694"
    assert arxiv.pdf_url == "https://arxiv.org/pdf/2508.03694"
    assert arxiv.abstract == "Our CoRL paper: world models supervise diffusion policies."
    assert arxiv.authors == ("Ada Moreau",)
    assert arxiv.categories == ("robotics", "imitation learning")
    assert arxiv.published == date(2025, 8, 6)
    assert arxiv.source == "rss:x"
    assert plain.title == "Grounded Language Agents & Their Failure Modes"
    assert plain.url == "https://lab.example.org/papers/grounded-agents"
    assert plain.published == date(2025, 8, 5)


def test_parse_atom_feed() -> None:
    atom = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>urn:x</id>
<updated>2025-08-06T00:00:00Z</updated>
<entry><id>urn:uuid:1</id><title type="html">A &lt;i&gt;Neat&lt;/i&gt; Result</title>
<link href="https://example.org/1"/><updated>2025-08-04T10:00:00Z</updated>
<author><name>Ann One</name></author><author><name>Bo Two</name></author>
<summary type="html">&lt;p&gt;First.&lt;/p&gt;&lt;p&gt;Second.&lt;/p&gt;</summary></entry>
</feed>"""
    (paper,) = parse(atom, "rss:y").papers
    assert paper.key == "rss:urn:uuid:1"
    assert paper.title == "A Neat Result"
    assert paper.abstract == "First. Second."
    assert paper.authors == ("Ann One", "Bo Two")
    assert paper.published == date(2025, 8, 4)


@pytest.mark.parametrize("data", [b"", b"<html><body>a login page</body></html>", b"{}"])
def test_parse_rejects_what_is_not_a_feed(data: bytes) -> None:
    with pytest.raises(PayloadError, match=r"^rss:x: not an? "):
        parse(data, "rss:x")


def test_truncated_feed_is_read_leniently_and_says_so() -> None:
    cut = FEED[: FEED.index(b"<title>A Post Without")]
    result = parse(cut, "rss:x")
    assert [p.title for p in result.papers][:2] == [
        "Diffusion Policies with World Models (accepted at CoRL)",
        "Grounded Language Agents & Their Failure Modes",
    ]
    assert result.skip_reasons[0].startswith("feed: malformed XML read leniently")


def test_fetch_and_conditional_get(server: LocalHTTPServer) -> None:
    lm = "Wed, 06 Aug 2025 07:00:00 GMT"
    server.route(
        "/feed.xml",
        Canned(FEED, content_type=RSS, headers={"Last-Modified": lm}),
        Canned(status=304),
    )
    first = fetch(server)
    assert len(first.papers) == 3 and first.skipped == 2 and first.day is None
    assert first.validators == Validators(None, lm)
    second = fetch(server, first.validators)
    assert second.not_modified and second.validators == first.validators
    assert server.requests[1].header("If-Modified-Since") == lm
    assert server.requests[1].header("If-None-Match") is None


def test_fetch_error_and_wrong_type(server: LocalHTTPServer) -> None:
    server.route(
        "/feed.xml", Canned(b"gone", status=410), Canned(b"<html/>", content_type="text/html")
    )
    with pytest.raises(FetchError, match=r"^rss:http://127\.0\.0\.1:\d+/feed\.xml: HTTP 410"):
        fetch(server)
    with pytest.raises(PayloadError, match="but got text/html"):
        fetch(server)


@pytest.mark.parametrize("spec", ["rss:", "rss:ftp://example.org/x", "rss:example.org/feed"])
def test_bad_rss_specs(spec: str) -> None:
    with pytest.raises(SourceSpecError, match=r"expected rss:http\(s\)://host/path"):
        make_source(spec)


def test_a_feed_of_5000_items() -> None:
    item = "<item><title>Post {n}</title><link>https://example.org/p/{n}</link></item>"
    feed = "<rss version='2.0'><channel><title>t</title>{}</channel></rss>".format(
        "".join(item.format(n=n) for n in range(5000))
    )
    result = parse(feed.encode(), "rss:big")
    assert len(result.papers) == 5000 and result.skipped == 0
    assert result.papers[-1].key == "url:https://example.org/p/4999"
