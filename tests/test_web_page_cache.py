"""The page cache: one build per key at a time, stale pages answered while they are rebuilt."""

from __future__ import annotations

import asyncio
import threading

from mailer.web.page_cache import STALE_TTLS, PageCache, Rendered


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_misses_build_once() -> None:
    builds = []
    gate = threading.Event()

    def build() -> Rendered:
        gate.wait(5)
        builds.append(1)
        return Rendered.of(b"page", "text/html")

    async def main() -> list[Rendered]:
        cache = PageCache(60)
        waiting = [asyncio.create_task(cache.get("k", build)) for _ in range(20)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(*waiting)

    answers = asyncio.run(main())
    assert len(builds) == 1 and {a.body for a in answers} == {b"page"}


def test_a_stale_page_is_answered_while_it_is_rebuilt() -> None:
    clock = Clock()
    versions = iter([b"v1", b"v2", b"v3"])

    def build() -> Rendered:
        return Rendered.of(next(versions), "text/html")

    async def main() -> None:
        cache = PageCache(10, clock=clock)
        assert (await cache.get("k", build)).body == b"v1"
        clock.now += 5
        assert cache.peek("k") is not None and cache.peek("k").body == b"v1"  # type: ignore[union-attr]
        clock.now += 10  # stale: answered at once, rebuilt behind
        assert (await cache.get("k", build)).body == b"v1"
        for _ in range(100):
            await asyncio.sleep(0.01)
            if cache.peek("k").body == b"v2":  # type: ignore[union-attr]
                break
        assert cache.peek("k").body == b"v2"  # type: ignore[union-attr]
        clock.now += 10 * STALE_TTLS  # too old to answer: the next request waits for a build
        assert cache.peek("k") is None
        assert (await cache.get("k", build)).body == b"v3"

    asyncio.run(main())


def test_a_failed_rebuild_keeps_the_stale_page() -> None:
    clock = Clock()
    calls = []

    def build() -> Rendered:
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("database gone")
        return Rendered.of(b"v1", "text/html")

    async def main() -> PageCache:
        cache = PageCache(10, clock=clock)
        await cache.get("k", build)
        clock.now += 11
        assert cache.peek("k").body == b"v1"  # type: ignore[union-attr]
        for _ in range(100):
            await asyncio.sleep(0.01)
            if cache.rebuild_errors:
                break
        assert cache.peek("k").body == b"v1"  # type: ignore[union-attr]
        return cache

    assert asyncio.run(main()).rebuild_errors == 1
