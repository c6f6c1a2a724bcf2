"""In-process sliding-window rate limits, keyed by client address (or anything else)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class Throttle:
    """At most ``limit`` events per ``window`` seconds for each key.

    Per process: several web processes each allow ``limit``; the per-address limit that
    really matters is kept in the database (``confirmation_sent_at``).
    """

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> int:
        """Record an event; 0 when allowed, else the seconds until the next one is."""
        now = self._clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= self._max_keys:
                    self._sweep(now)
                events = self._events[key] = deque()
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return max(1, math.ceil(events[0] + self.window - now))
            events.append(now)
            return 0

    def _sweep(self, now: float) -> None:
        # Bounded memory under a flood of distinct addresses: forget idle keys first.
        stale = [k for k, v in self._events.items() if not v or v[-1] <= now - self.window]
        for key in stale:
            del self._events[key]
        if len(self._events) >= self._max_keys:
            self._events.clear()
