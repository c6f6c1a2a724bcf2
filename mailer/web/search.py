"""The web process's search index over the whole store: built once, topped up every minute.

Building reads every paper (about 10 s per 100,000 on one core), so a process builds it once,
in the background when told to warm up, and afterwards only reads papers stored or changed
since its last look. Searches share it under a lock (its check cache is not thread-safe).
When re-indexed papers leave over a quarter of it dead, a fresh one is built aside and swapped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from mailer.db import catalog as catalog_repo
from mailer.db.session import SessionFactory
from mailer.matching import Profile
from mailer.matching.store import Order, StoreIndex
from mailer.matching.textcheck import PaperText

log = logging.getLogger(__name__)

BUILD_CHUNK = 5_000
REBUILD_DEAD_SHARE = 0.25
# A fetch stamps its papers with its start time and may commit minutes later: look back this
# far for changes each time, so a slow transaction is never missed (re-reading is cheap).
LOOK_BACK = timedelta(hours=2)


class StoreSearch:
    """One process's whole-store index and its upkeep."""

    def __init__(
        self,
        session_factory: SessionFactory,
        clock: Callable[[], datetime],
        *,
        refresh_seconds: float = 60.0,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._index: StoreIndex | None = None
        self._checked_at = 0.0  # monotonic time of the last top-up
        self._since: datetime | None = None  # database time the next top-up reads from
        self._rebuilding = False

    def warm(self, then: Callable[[], None] | None = None) -> threading.Thread:
        """Build the index in a background thread (a server calls this at start), then call
        ``then``."""

        def build() -> None:
            self._ready()
            if then is not None:
                then()

        thread = threading.Thread(target=build, name="mailer-search-index", daemon=True)
        thread.start()
        return thread

    def search(self, profile: Profile, order: Order) -> list[int]:
        """Ids of every stored paper the profile matches, sorted by ``order``."""
        with self._lock:
            index = self._fresh()
            return index.search(profile, self._texts, order)

    @property
    def size(self) -> int:
        """Papers in the index (0 before it is built)."""
        return self._index.live if self._index is not None else 0

    def _ready(self) -> None:
        with self._lock:
            self._fresh()

    def _fresh(self) -> StoreIndex:
        """The index, built or topped up as needed (the caller holds the lock)."""
        if self._index is None:
            self._index, self._since = self._build()
            self._checked_at = time.monotonic()
        elif time.monotonic() - self._checked_at >= self._refresh_seconds:
            self._top_up(self._index)
        return self._index

    def _build(self) -> tuple[StoreIndex, datetime]:
        started = time.monotonic()
        since = self._clock() - LOOK_BACK
        index = StoreIndex()
        after = 0
        while True:
            with self._session_factory() as session:
                docs = catalog_repo.search_docs(session, after, BUILD_CHUNK)
            if not docs:
                break
            index.add(docs)
            after = docs[-1].id
        log.info(
            "search index built papers=%d seconds=%.1f", index.live, time.monotonic() - started
        )
        return index, since

    def _top_up(self, index: StoreIndex) -> None:
        assert self._since is not None
        since, self._since = self._since, self._clock() - LOOK_BACK
        with self._session_factory() as session:
            index.add(catalog_repo.changed_docs(session, since))
        self._checked_at = time.monotonic()
        if index.dead_share > REBUILD_DEAD_SHARE and not self._rebuilding:
            self._rebuilding = True
            threading.Thread(
                target=self._rebuild, name="mailer-search-rebuild", daemon=True
            ).start()

    def _rebuild(self) -> None:
        try:
            fresh, since = self._build()
            with self._lock:
                self._index, self._since = fresh, since
                self._top_up(fresh)
        finally:
            self._rebuilding = False

    def _texts(self, ids: Sequence[int]) -> Mapping[int, PaperText]:
        with self._session_factory() as session:
            return catalog_repo.paper_texts(session, ids)
