"""The signup form's preview: the recent papers a profile would match, highlighted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailer.db import papers as paper_repo
from mailer.db.session import SessionFactory
from mailer.errors import ProfileError
from mailer.matching import PaperIndex, parse_profile
from mailer.rendering.views import PaperView, paper_view

PREVIEW_DAYS = 7
PREVIEW_LIMIT = 10
CACHE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """What a profile matches among the recent papers, or why it cannot be read."""

    query: str
    papers: tuple[PaperView, ...] = ()
    total: int = 0
    considered: int = 0
    error: str | None = None
    error_position: int | None = None

    @property
    def more(self) -> int:
        """Matches not shown."""
        return max(0, self.total - len(self.papers))


class RecentPapers:
    """An index of the last week's papers, rebuilt at most once a minute and shared by requests."""

    def __init__(
        self,
        session_factory: SessionFactory,
        clock: Callable[[], datetime],
        *,
        days: int = PREVIEW_DAYS,
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._days = days
        self._ttl = ttl
        self._lock = threading.Lock()
        self._index: PaperIndex | None = None
        self._built = 0.0

    def _current(self) -> PaperIndex:
        if self._index is None or time.monotonic() - self._built > self._ttl:
            end = self._clock()
            with self._session_factory() as session:
                papers = paper_repo.papers_first_seen(session, end - timedelta(self._days), end)
            self._index = PaperIndex(papers)
            self._built = time.monotonic()
        return self._index

    def preview(self, text: str, limit: int = PREVIEW_LIMIT) -> PreviewResult:
        """The best ``limit`` matches of a profile (an error result for an invalid one)."""
        query = text.strip()
        try:
            profile = parse_profile(query)
        except ProfileError as exc:
            return PreviewResult(query, error=str(exc), error_position=exc.position)
        # The index keeps per-term caches that are not safe to share between threads.
        with self._lock:
            index = self._current()
            ranked = index.digest(profile, limit=limit)
            matches = ranked.matches
            considered = len(index.papers)
        views = tuple(paper_view(match) for match in matches)
        return PreviewResult(query, views, ranked.total, considered)
