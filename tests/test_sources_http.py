"""The polite HTTP layer: timeouts, dropped connections, redirects, Retry-After dates."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from mailer.errors import FetchError
from mailer.sources.http import HttpPolicy, HttpResponse, conditional_get, retry_after_seconds
from tests.helpers.http_server import Canned, LocalHTTPServer


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


def get(server: LocalHTTPServer, path: str, policy: HttpPolicy) -> HttpResponse:
    async def go() -> HttpResponse:
        async with httpx.AsyncClient(timeout=5) as client:
            return await conditional_get(client, server.url(path), name="t", policy=policy)

    return asyncio.run(go())


def test_timeouts_are_retried_then_reported(server: LocalHTTPServer) -> None:
    server.route("/slow", Canned(b"late", delay=0.5))
    sleeps = Sleeps()
    with pytest.raises(FetchError, match=r"^t: timed out \(ReadTimeout\) from .*/slow \(gave up"):
        get(server, "/slow", HttpPolicy(timeout=0.1, retries=1, sleep=sleeps))
    assert len(server.requests) == 2 and len(sleeps.delays) == 1


def test_a_dropped_connection_is_retried(server: LocalHTTPServer) -> None:
    server.route("/drop", Canned(drop=True), Canned(b"fine", content_type="text/plain"))
    response = get(server, "/drop", HttpPolicy(sleep=Sleeps()))
    assert response.body == b"fine" and response.status == 200
    assert len(server.requests) == 2


def test_unreachable_host_is_a_fetch_error() -> None:
    with LocalHTTPServer() as gone:
        url = gone.url("/x")

    async def go() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            await conditional_get(client, url, name="t", policy=HttpPolicy(retries=0))

    with pytest.raises(FetchError, match=r"^t: connection failed .* \(gave up after 1 attempts\)"):
        asyncio.run(go())


def test_redirects_are_followed(server: LocalHTTPServer) -> None:
    server.route("/old", Canned(status=301, headers={"Location": "/new"}))
    server.route("/new", Canned(b"here", content_type="text/plain"))
    assert get(server, "/old", HttpPolicy()).body == b"here"


def test_429_without_retry_after_backs_off(server: LocalHTTPServer) -> None:
    server.route("/busy", Canned(status=429), Canned(b"ok"))
    sleeps = Sleeps()
    get(server, "/busy", HttpPolicy(backoff_base=1.0, jitter=0.0, sleep=sleeps))
    assert sleeps.delays == [1.0]


def test_retry_after_parsing() -> None:
    now = datetime(2025, 8, 6, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(later, now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
