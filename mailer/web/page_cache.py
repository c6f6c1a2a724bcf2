"""Rendered public pages kept for a minute, built once per key however many ask at once.

Only the event loop touches the cache, so it needs no lock: a miss starts one build in the
thread pool and every request for the same key meanwhile awaits that build; a stale page is
answered while it is rebuilt.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

MAX_ENTRIES = 1024
STALE_TTLS = 10
GZIP_MIN = 1024  # smaller bodies are sent as they are
VARY = (("vary", "Accept-Encoding"),)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A finished response body with its status, type, validator (the body's hash) and, when it
    pays, the body gzipped once for every client that takes gzip."""

    body: bytes
    media_type: str
    status: int
    etag: str
    cache_seconds: int
    gzipped: bytes | None = None

    @classmethod
    def of(
        cls, body: bytes, media_type: str, status: int = 200, cache_seconds: int = 60
    ) -> Rendered:
        """A rendered response; error answers are cached briefly too, but not by browsers."""
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        packed = gzip.compress(body, compresslevel=6, mtime=0) if len(body) > GZIP_MIN else None
        if packed is not None and len(packed) >= len(body):
            packed = None
        return cls(body, media_type, status, etag, cache_seconds if status == 200 else 0, packed)

    def encoded(self, accept_encoding: str | None) -> tuple[bytes, str, list[tuple[str, str]]]:
        """The body, its ETag and the headers that say how it is encoded, for this client."""
        if self.gzipped is not None and accepts_gzip(accept_encoding):
            return self.gzipped, self.etag[:-1] + '-gz"', [*VARY, ("content-encoding", "gzip")]
        return self.body, self.etag, list(VARY)

    def headers(self, etag: str) -> list[tuple[str, str]]:
        """The caching headers of every answer from this entry."""
        return [("etag", etag), ("cache-control", f"public, max-age={self.cache_seconds}")]

    def response(self, request: Request) -> Response:
        """The response, or 304 when the client already has this body (If-None-Match)."""
        body, etag, encoding = self.encoded(request.headers.get("accept-encoding"))
        headers = dict(self.headers(etag))
        if self.status == 200 and etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        headers.update(encoding)
        return Response(body, self.status, headers=headers, media_type=self.media_type)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an Accept-Encoding header takes gzip (``gzip`` or ``*``, not with q=0)."""
    for part in (accept_encoding or "").lower().split(","):
        name, _, params = part.partition(";")
        if name.strip() in ("gzip", "*"):
            quality = params.replace(" ", "").removeprefix("q=")
            return not quality or quality.strip("0.") != ""
    return False


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (or ``*``)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


class PageCache:
    """Rendered responses by key, fresh for ``ttl`` seconds, at most ``MAX_ENTRIES`` of them.

    A stale entry (up to ``STALE_TTLS`` times ``ttl`` old) is still answered while one rebuild
    runs in the background: a popular page never makes its readers wait for its rebuild.
    """

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._building: dict[Hashable, asyncio.Future[Rendered]] = {}
        self._rebuilds: set[asyncio.Task[Rendered]] = set()  # held: the loop keeps weak refs
        self.rebuild_errors = 0

    def peek(self, key: Hashable) -> Rendered | None:
        """The cached response for ``key`` unless it is missing or too old (a stale one starts
        its rebuild)."""
        found = self._entries.get(key)
        if found is None:
            return None
        age = self._clock() - found.stored_at
        if age < self.ttl:
            return found.rendered
        if age >= self.ttl * STALE_TTLS:
            return None
        if key not in self._building:
            task = asyncio.get_running_loop().create_task(self._build(key, found.build))
            self._rebuilds.add(task)
            task.add_done_callback(self._quiet)
        return found.rendered

    async def get(self, key: Hashable, build: Callable[[], Rendered]) -> Rendered:
        """The cached response for ``key``, built in a worker thread when missing or too old."""
        found = self.peek(key)
        if found is not None:
            return found
        pending = self._building.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._build(key, build)

    async def _build(self, key: Hashable, build: Callable[[], Rendered]) -> Rendered:
        future: asyncio.Future[Rendered] = asyncio.get_running_loop().create_future()
        self._building[key] = future
        try:
            rendered = await run_in_threadpool(build)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so no "never retrieved" warning without waiters
            raise
        finally:
            del self._building[key]
        future.set_result(rendered)
        self._entries[key] = _Entry(self._clock(), rendered, build)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return rendered

    def _quiet(self, task: asyncio.Task[Rendered]) -> None:
        """A background rebuild that failed leaves the stale entry; the next miss shows why."""
        self._rebuilds.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.rebuild_errors += 1
            log.warning("page rebuild failed: %s", task.exception())


@dataclass(frozen=True, slots=True)
class _Entry:
    stored_at: float
    rendered: Rendered
    build: Callable[[], Rendered]
