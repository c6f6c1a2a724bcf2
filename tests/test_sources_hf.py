"""hf-daily: parsing the stored API response and fetching it from a real local server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from mailer.errors import FetchError, PayloadError, SourceSpecError
from mailer.sources import USER_AGENT, FetchResult, HttpPolicy, Validators, make_source
from mailer.sources.hf_daily import parse
from tests.helpers.http_server import Canned, LocalHTTPServer

DATA = Path(__file__).parent / "data" / "sources"
STORED = (DATA / "hf_daily_2025-08-06.json").read_bytes()
DAY = date(2025, 8, 6)
PATH = "/api/daily_papers"


class Sleeps:
    """An injected sleep that records delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


def fetch(
    server: LocalHTTPServer,
    validators: Validators | None = None,
    sleeps: Sleeps | None = None,
) -> FetchResult:
    policy = HttpPolicy(sleep=sleeps or Sleeps())
    source = make_source("hf-daily", hf_api_url=server.url(PATH), policy=policy)

    async def go() -> FetchResult:
        async with httpx.AsyncClient(timeout=5) as client:
            return await source.fetch(client, validators or Validators(), DAY)

    return asyncio.run(go())


def test_parse_stored_response() -> None:
    result = parse(STORED)
    keys = [p.key for p in result.papers]
    assert keys == [
        "2508.03694",
        "2508.02001",
        "2508.01777",
        "2508.03011",
        "2508.02500",
        "hep-th/9901001",
    ]
    first = result.papers[0]
    assert first.arxiv_id == "2508.03694"
    assert first.authors == ("Ada Moreau", "Sergei Lewin")  # the hidden author is left out
    assert first.abstract.startswith("We study how world models can supervise diffusion policies.")
    assert "\n" not in first.abstract and "  " not in first.abstract
    assert first.keywords == ("diffusion policy", "world model", "imitation learning")
    assert first.url == "https://arxiv.org/abs/2508.03694"
    assert first.pdf_url == "https://arxiv.org/pdf/2508.03694"
    assert first.hf_url == "https://huggingface.co/papers/2508.03694"
    assert first.code_url == "https://github.com/example/wm-dp"
    assert first.project_url == "https://wm-dp.github.io"
    assert first.thumbnail_url and first.thumbnail_url.endswith("/2508.03694.png")
    assert (first.published, first.upvotes, first.comments) == (date(2025, 8, 5), 42, 3)
    assert first.source == "hf-daily"


def test_parse_edge_cases() -> None:
    papers = {p.key: p for p in parse(STORED).papers}
    versioned = papers["2508.02001"]
    assert versioned.title == "Self-Supervised Representations for Speech & Language"
    assert versioned.abstract.startswith("Self-supervised learning of representations <i>without")
    assert versioned.code_url is None  # githubRepo missing
    assert papers["2508.03011"].code_url is None  # githubRepo empty
    assert papers["2508.02500"].authors == ("Chris Obi",)
    assert papers["2508.01777"].title.startswith('$\\pi$-Bench: Evaluating "Reasoning"')
    assert papers["hep-th/9901001"].abstract == (
        "An old-style arXiv identifier with a tab and spaces."
    )


def test_parse_skips_and_explains_bad_items() -> None:
    assert parse(STORED).skip_reasons == (
        "item 6: duplicate of 2508.03694",
        "item 7: no arXiv id (None)",
        "item 8: 2508.04444: no title",
        "item 9: not an object",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (STORED[: len(STORED) // 2], r"invalid JSON at line \d+ column \d+: .*\(truncated\?\)"),
        (b'{"error": "Invalid date"}', "the API answered an error: Invalid date"),
        (b'{"papers": []}', "expected a JSON array, got dict"),
        (b"", "invalid JSON"),
    ],
)
def test_parse_rejects_unreadable_payloads(data: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(data)


def test_fetch_sends_date_user_agent_and_reads_validators(server: LocalHTTPServer) -> None:
    server.route(
        PATH,
        Canned(
            STORED,
            content_type="application/json; charset=utf-8",
            headers={"ETag": 'W/"abc"', "Last-Modified": "Wed, 06 Aug 2025 01:00:00 GMT"},
        ),
    )
    result = fetch(server)
    assert len(result.papers) == 6 and result.skipped == 4
    assert len(result.skip_reasons) == 4
    assert result.day == DAY and not result.not_modified
    assert result.validators == Validators('W/"abc"', "Wed, 06 Aug 2025 01:00:00 GMT")
    (request,) = server.requests
    assert request.query == {"date": "2025-08-06"}
    assert request.header("User-Agent") == USER_AGENT
    assert USER_AGENT.startswith("mailer/0.1")
    assert request.header("If-None-Match") is None


def test_fetch_conditional_get_304(server: LocalHTTPServer) -> None:
    def respond(request: object) -> Canned:
        assert getattr(request, "headers", {}).get("if-none-match") == '"v1"'
        return Canned(status=304, headers={"ETag": '"v1"'})

    server.route_fn(PATH, respond)
    sent = Validators('"v1"', "Wed, 06 Aug 2025 01:00:00 GMT")
    result = fetch(server, sent)
    assert result.not_modified and result.papers == ()
    assert result.validators == sent
    assert server.requests[0].header("If-Modified-Since") == sent.last_modified


def test_fetch_http_error_is_fetch_error_without_retry(server: LocalHTTPServer) -> None:
    server.route(PATH, Canned(b"nope", status=404, content_type="text/plain"))
    with pytest.raises(FetchError, match=r"^hf-daily: HTTP 404 from http://127\.0\.0\.1:\d+/api"):
        fetch(server)
    assert len(server.requests) == 1


def test_fetch_retries_500_then_succeeds(server: LocalHTTPServer) -> None:
    ok = Canned(b"[]", content_type="application/json")
    server.route(PATH, Canned(b"oops", status=500), Canned(b"", status=502), ok)
    sleeps = Sleeps()
    result = fetch(server, sleeps=sleeps)
    assert result.papers == () and len(server.requests) == 3
    assert len(sleeps.delays) == 2
    assert 2.0 <= sleeps.delays[0] <= 2.5 and 4.0 <= sleeps.delays[1] <= 5.0  # exponential


def test_fetch_honours_retry_after_on_429(server: LocalHTTPServer) -> None:
    ok = Canned(STORED, content_type="application/json")
    server.route(PATH, Canned(status=429, headers={"Retry-After": "7"}), ok)
    sleeps = Sleeps()
    assert len(fetch(server, sleeps=sleeps).papers) == 6
    assert sleeps.delays == [7.0]


def test_fetch_gives_up_after_retries_with_a_clear_message(server: LocalHTTPServer) -> None:
    server.route(PATH, Canned(status=503))
    sleeps = Sleeps()
    with pytest.raises(
        FetchError, match=r"^hf-daily: HTTP 503 from .* \(gave up after 4 attempts\)"
    ):
        fetch(server, sleeps=sleeps)
    assert len(server.requests) == 4 and len(sleeps.delays) == 3


def test_fetch_refuses_a_retry_after_that_is_too_long(server: LocalHTTPServer) -> None:
    server.route(PATH, Canned(status=429, headers={"Retry-After": "86400"}))
    with pytest.raises(FetchError, match=r"HTTP 429 .*Retry-After 86400 s is too long"):
        fetch(server)
    assert len(server.requests) == 1


def test_fetch_rejects_wrong_content_type(server: LocalHTTPServer) -> None:
    server.route(PATH, Canned(b"<html>login</html>", content_type="text/html"))
    with pytest.raises(PayloadError, match="expected json but got text/html"):
        fetch(server)


def test_fetch_truncated_json_is_payload_error(server: LocalHTTPServer) -> None:
    server.route(PATH, Canned(STORED[:500], content_type="application/json"))
    with pytest.raises(PayloadError, match=r"^hf-daily: invalid JSON .*truncated"):
        fetch(server)


def test_unknown_specs_are_refused_in_one_line() -> None:
    for spec in ("", "hf-daily:x", "nope", "ftp:thing"):
        with pytest.raises(SourceSpecError, match=r"^unknown source .*: expected hf-daily") as err:
            make_source(spec)
        assert "\n" not in str(err.value)
