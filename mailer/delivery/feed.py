"""OutboxFeed: tells a sending run that another thread is still adding rows to the outbox.

``mailer send --now`` plans in one thread while the event loop sends: the planner commits
each chunk of digests, and the sender claims them at once instead of waiting for the whole
plan. An empty claim then means "nothing due *yet*": the sender waits here until the planner
commits more or finishes. The planner calls ``added`` after each commit and ``close`` when
it is done, from its own thread; ``halted`` tells it to stop early (a stop signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class OutboxFeed:
    """A count of commits by a producer thread, awaited by the sender on its event loop."""

    def __init__(self) -> None:
        self._generation = 0  # commits so far; only ever grows
        self._closed = False
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def generation(self) -> int:
        """How many commits the producer has announced so far."""
        return self._generation

    @property
    def closed(self) -> bool:
        """True once the producer has said it will add nothing more."""
        return self._closed

    def added(self) -> None:
        """The producer committed more rows (any thread)."""
        with self._lock:
            self._generation += 1
        self._wake()

    def close(self) -> None:
        """The producer is done, normally or not (any thread); the sender drains and ends."""
        with self._lock:
            self._closed = True
        self._wake()

    def halt(self) -> None:
        """Ask the producer to stop after its current commit."""
        self._halt.set()

    def halted(self) -> bool:
        """Whether the producer was asked to stop (it checks between commits)."""
        return self._halt.is_set()

    async def more_since(self, seen: int, stop: asyncio.Event) -> bool:
        """Wait until rows were committed after generation ``seen``, or nothing more comes.

        True: claim again (something was committed since ``seen``). False: the producer is
        done and committed nothing since ``seen``, or ``stop`` was set.
        """
        wake = asyncio.Event()
        entry = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._waiters.append(entry)
        try:
            while not stop.is_set():
                if self._generation != seen:
                    return True
                if self._closed:
                    return False
                stopping = asyncio.ensure_future(stop.wait())
                woken = asyncio.ensure_future(wake.wait())
                try:
                    await asyncio.wait((stopping, woken), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    woken.cancel()
                wake.clear()
            return False
        finally:
            with self._lock:
                self._waiters.remove(entry)

    def _wake(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, wake in waiters:
            # The loop may have closed since (a run that ended): nobody is waiting then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)
