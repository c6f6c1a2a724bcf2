"""The polite HTTP client side of sources: conditional GET, User-Agent, throttling, retries.

Also the guarded one: every request has a total deadline (not only a per-read timeout, which a
server dripping a byte at a time never trips), the body is read in bounded pieces and refused
past ``Limits.max_bytes`` after decompression (a gzip bomb is stopped within a few megabytes),
redirects are followed here (at most ``MAX_REDIRECTS``, their bodies never read), and every
failure, whatever httpx raised, becomes a one-line ``FetchError`` or ``PayloadError`` whose
URLs have their credentials masked.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from mailer import __version__
from mailer.errors import FetchError, PayloadError
from mailer.logs import masked
from mailer.sources.base import DEFAULT_LIMITS, Limits, Validators

USER_AGENT = f"mailer/{__version__}"
MAX_REDIRECTS = 5
# Only encodings we decode ourselves, in bounded pieces (httpx would also offer br and zstd).
ACCEPT_ENCODING = "gzip, deflate"
_PIECE = 256 * 1024  # decompressed bytes produced per step
# Text feeds compress 4- to 10-fold (90-fold when every item repeats the same words); a body
# inflating 200-fold past its first MiB is a bomb, refused long before it fills the size cap,
# which a legitimate large feed may use. (Zeros inflate 1,000-fold.)
BOMB_RATIO = 200
BOMB_AFTER = 1024 * 1024


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
    timeout: float | None = None  # per connect / read; None: the client's own timeout
    deadline: float = 60.0  # seconds for one whole request, connect to last byte; not retried
    limits: Limits = DEFAULT_LIMITS
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
    headers = {
        "User-Agent": policy.user_agent,
        "Accept": accept,
        "Accept-Encoding": ACCEPT_ENCODING,
    }
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


class _Inflater:
    """gzip or zlib data decompressed in pieces of at most ``_PIECE`` bytes."""

    def __init__(self) -> None:
        self._engine = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or zlib header
        self.consumed = 0  # compressed bytes inflated so far

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """The decompressed pieces of ``data``; zlib.error when it is not what it claims."""
        while True:
            piece = self._engine.decompress(data, _PIECE)
            self.consumed += len(data) - len(self._engine.unconsumed_tail)
            yield piece
            data = self._engine.unconsumed_tail
            if not data and len(piece) < _PIECE:
                return

    @property
    def complete(self) -> bool:
        """True once the compressed stream's end was read."""
        return self._engine.eof


def _inflater(name: str, url: str, response: httpx.Response) -> _Inflater | None:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip", "deflate"):
        return _Inflater()
    raise PayloadError(f"{name}: unsupported Content-Encoding {encoding[:40]!r} from {url}")


@dataclass
class _Progress:
    """What the current attempt has received so far (for the deadline's message)."""

    received: int = 0


async def _read_body(
    name: str, url: str, response: httpx.Response, limit: int, progress: _Progress
) -> bytes:
    """The body, decompressed in bounded pieces; PayloadError past ``limit`` bytes."""
    inflater = _inflater(name, url, response)
    declared = response.headers.get("Content-Length", "")
    if inflater is None and declared.isdigit() and int(declared) > limit:
        raise PayloadError(f"{name}: the response is {_size(int(declared))}, over {_cap(limit)}")
    chunks: list[bytes] = []
    total = 0
    async for raw in response.aiter_raw():
        progress.received += len(raw)
        for piece in inflater.pieces(raw) if inflater else (raw,):
            total += len(piece)
            if total > limit:
                raise PayloadError(f"{name}: the response is over {_cap(limit)}{_after(inflater)}")
            if inflater and total > BOMB_AFTER and total > BOMB_RATIO * inflater.consumed:
                raise PayloadError(
                    f"{name}: the compressed response from {url} inflates more than"
                    f" {BOMB_RATIO}-fold (a compression bomb?)"
                )
            chunks.append(piece)
    if inflater is not None and not inflater.complete:
        raise PayloadError(f"{name}: the compressed response from {url} is truncated")
    return b"".join(chunks)


def _after(inflater: _Inflater | None) -> str:
    return " once decompressed" if inflater is not None else ""


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:,.1f} MiB" if count >= 1024 * 1024 else f"{count:,} bytes"


def _cap(limit: int) -> str:
    return f"the {_size(limit)} limit (MAILER_FETCH_MAX_BYTES)"


async def _open(
    client: httpx.AsyncClient,
    name: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    policy: HttpPolicy,
) -> httpx.Response:
    """Send the request, following at most MAX_REDIRECTS redirects without reading their bodies."""
    request = client.build_request("GET", url, headers=headers)
    if policy.timeout is not None:
        request.extensions["timeout"] = httpx.Timeout(policy.timeout).as_dict()
    seen = {str(url)}
    for _ in range(MAX_REDIRECTS + 1):
        response = await client.send(request, stream=True, follow_redirects=False)
        following = response.next_request
        if following is None:
            return response
        await response.aclose()
        if str(following.url) in seen:
            raise FetchError(f"{name}: redirect loop at {masked(str(following.url))}")
        seen.add(str(following.url))
        request = following
    raise FetchError(f"{name}: more than {MAX_REDIRECTS} redirects from {masked(str(url))}")


async def _attempt(
    client: httpx.AsyncClient,
    name: str,
    url: httpx.URL,
    headers: Mapping[str, str],
    policy: HttpPolicy,
) -> HttpResponse:
    """One request under the deadline; _Retryable for what a retry may cure."""
    progress = _Progress()
    shown = masked(str(url))
    try:
        async with asyncio.timeout(policy.deadline):
            response = await _open(client, name, url, headers, policy)
            try:
                _classify(name, shown, response, policy)
                body = (
                    b""
                    if response.status_code == 304
                    else await _read_body(name, shown, response, policy.limits.max_bytes, progress)
                )
            finally:
                await response.aclose()
    except TimeoutError:
        raise FetchError(
            f"{name}: no complete answer from {shown} within the {policy.deadline:g} s deadline"
            f" (MAILER_HTTP_DEADLINE; {progress.received:,} bytes received)"
        ) from None
    except httpx.TimeoutException as exc:
        raise _Retryable(f"timed out ({type(exc).__name__})", None) from exc
    except httpx.TransportError as exc:
        raise _Retryable(f"connection failed ({_brief(exc)})", None) from exc
    except zlib.error:
        raise PayloadError(f"{name}: the compressed response from {shown} is corrupt") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # e.g. a redirect to a bad URL
        raise FetchError(f"{name}: {_brief(exc)} from {shown}") from None
    return _to_response(response, body, shown)


def _brief(exc: Exception) -> str:
    return masked(str(exc) or type(exc).__name__).splitlines()[0][:200]


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
                    f"{name}: {exc.reason} from {masked(str(full_url))}"
                    f" (gave up after {tries} attempts)"
                ) from exc
            await policy.sleep(exc.delay if exc.delay is not None else _backoff(policy, attempt))
            continue
        return _with_validators(response, validators)
    raise AssertionError("unreachable")  # pragma: no cover


def _to_response(response: httpx.Response, body: bytes, shown: str) -> HttpResponse:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    validators = Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))
    return HttpResponse(shown, response.status_code, body, content_type, validators)


def _with_validators(response: HttpResponse, sent: Validators) -> HttpResponse:
    """A 304 keeps the validators sent unless it brings new ones; a 200 keeps only its own,
    so stale ones that no longer describe the body are dropped."""
    if response.status != 304:
        return response
    new = Validators(
        etag=response.validators.etag or sent.etag,
        last_modified=response.validators.last_modified or sent.last_modified,
    )
    return HttpResponse(response.url, response.status, response.body, response.content_type, new)


def require_content_type(response: HttpResponse, name: str, accepted: tuple[str, ...]) -> None:
    """Raise PayloadError when the body's media type is none of ``accepted`` (substrings)."""
    kind = response.content_type
    if kind and not any(token in kind for token in accepted):
        raise PayloadError(
            f"{name}: expected {' or '.join(accepted)} but got {kind} from {response.url}"
        )
