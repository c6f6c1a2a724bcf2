"""The polite HTTP client side of sources: conditional GET, User-Agent, throttling, retries."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from mailer import __version__
from mailer.errors import FetchError, PayloadError
from mailer.sources.base import Validators

USER_AGENT = f"mailer/{__version__}"


def user_agent_for(contact_url: str) -> str:
    """A User-Agent naming the project and how to reach this deployment's operator."""
    return f"{USER_AGENT} (+{contact_url})"


Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """How a source talks HTTP: identity, timeouts and the retry schedule (sleep injected)."""

    user_agent: str = USER_AGENT
    retries: int = 3  # attempts after the first, on 429 / 5xx / transport errors
    backoff_base: float = 2.0
    backoff_max: float = 120.0
    jitter: float = 0.25  # up to +25 % on computed backoffs, so clients do not stampede
    max_retry_after: float = 600.0  # a longer Retry-After fails the fetch instead of stalling it
    timeout: float | None = None  # None: the client's own timeout
    sleep: Sleep = field(default=asyncio.sleep)


DEFAULT_POLICY = HttpPolicy()
NO_VALIDATORS = Validators()


class Throttle:
    """At most one request per ``interval`` seconds, shared by every source that holds it.

    Slots are reserved synchronously, so concurrent tasks queue up without a lock bound to a loop.
    """

    def __init__(self, interval: float, clock: Clock = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next_slot = float("-inf")

    async def wait(self, sleep: Sleep) -> None:
        """Wait (through ``sleep``) until this caller's request slot has come."""
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self.interval
        if slot > now:
            await sleep(slot - now)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A successful (2xx) or not-modified (304) answer."""

    url: str
    status: int
    body: bytes
    content_type: str
    validators: Validators

    @property
    def not_modified(self) -> bool:
        """True when the server answered 304 Not Modified."""
        return self.status == 304


class _Retryable(Exception):
    def __init__(self, reason: str, delay: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _request_headers(policy: HttpPolicy, validators: Validators, accept: str) -> dict[str, str]:
    headers = {"User-Agent": policy.user_agent, "Accept": accept}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _classify(name: str, url: str, response: httpx.Response, policy: HttpPolicy) -> None:
    """Raise _Retryable for 429/5xx, FetchError for any other failure status."""
    status = response.status_code
    if status == 429 or status >= 500:
        delay = retry_after_seconds(response.headers.get("Retry-After"))
        if delay is not None and delay > policy.max_retry_after:
            raise FetchError(
                f"{name}: HTTP {status} from {url} (Retry-After {delay:.0f} s is too long)"
            )
        raise _Retryable(f"HTTP {status}", delay)
    if status >= 400 or (status >= 300 and status != 304):
        raise FetchError(f"{name}: HTTP {status} from {url}")


async def _attempt(
    client: httpx.AsyncClient,
    name: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    policy: HttpPolicy,
) -> httpx.Response:
    try:
        if policy.timeout is None:
            response = await client.get(url, headers=headers, follow_redirects=True)
        else:
            response = await client.get(
                url, headers=headers, timeout=policy.timeout, follow_redirects=True
            )
    except httpx.TimeoutException as exc:
        raise _Retryable(f"timed out ({type(exc).__name__})", None) from exc
    except httpx.TransportError as exc:
        raise _Retryable(f"connection failed ({exc or type(exc).__name__})", None) from exc
    _classify(name, str(url), response, policy)
    return response


def _backoff(policy: HttpPolicy, attempt: int) -> float:
    delay = min(policy.backoff_max, policy.backoff_base * 2.0**attempt)
    return delay * (1 + random.random() * policy.jitter)


async def conditional_get(
    client: httpx.AsyncClient,
    url: str,
    *,
    name: str,
    validators: Validators = NO_VALIDATORS,
    policy: HttpPolicy = DEFAULT_POLICY,
    params: Mapping[str, str] | None = None,
    accept: str = "*/*",
    throttle: Throttle | None = None,
) -> HttpResponse:
    """GET with validators, retrying 429/5xx/transport errors; FetchError when it gives up."""
    full_url = httpx.URL(url, params=params) if params else httpx.URL(url)
    headers = _request_headers(policy, validators, accept)
    for attempt in range(policy.retries + 1):
        if throttle is not None:
            await throttle.wait(policy.sleep)
        try:
            response = await _attempt(client, name, full_url, headers, policy)
        except _Retryable as exc:
            if attempt == policy.retries:
                tries = policy.retries + 1
                raise FetchError(
                    f"{name}: {exc.reason} from {full_url} (gave up after {tries} attempts)"
                ) from exc
            await policy.sleep(exc.delay if exc.delay is not None else _backoff(policy, attempt))
            continue
        return _to_response(response, full_url, validators)
    raise AssertionError("unreachable")  # pragma: no cover


def _to_response(response: httpx.Response, url: httpx.URL, sent: Validators) -> HttpResponse:
    new = Validators(
        etag=response.headers.get("ETag") or sent.etag,
        last_modified=response.headers.get("Last-Modified") or sent.last_modified,
    )
    if response.status_code != 304:
        # A 200 without validators must not keep stale ones that no longer describe the body.
        new = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return HttpResponse(str(url), response.status_code, response.content, content_type, new)


def require_content_type(response: HttpResponse, name: str, accepted: tuple[str, ...]) -> None:
    """Raise PayloadError when the body's media type is none of ``accepted`` (substrings)."""
    kind = response.content_type
    if kind and not any(token in kind for token in accepted):
        raise PayloadError(
            f"{name}: expected {' or '.join(accepted)} but got {kind} from {response.url}"
        )
