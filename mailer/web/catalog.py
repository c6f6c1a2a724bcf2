"""What the papers pages show: a day's papers and searches of the whole store, as page data."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date

from mailer.context import Context
from mailer.db import catalog as catalog_repo
from mailer.errors import ProfileError
from mailer.matching import PaperIndex, Profile, parse_profile
from mailer.matching.store import Order
from mailer.models import Match
from mailer.rendering.papers import DayPage, Pager, SearchPage, day_label
from mailer.sources.calendar import expected_announcement
from mailer.web.search import StoreSearch

DAY_PAGE_SIZE = 50
SEARCH_PAGE_SIZE = 20
RESULT_LISTS = 64  # searches whose full ordered result list is kept for paging
SOURCE_NAMES = {"arxiv": "arXiv", "hf-daily": "Hugging Face Daily Papers"}


class PageNotFound(LookupError):
    """A page number past the last page."""


def no_papers_notice(day: date, today: date, source_kinds: Sequence[str]) -> str:
    """Why a day has no papers: not yet, no announcement (the source calendar), or nothing."""
    if day > today:
        return "This day has not come yet."
    calendared = [k for k in source_kinds if k in SOURCE_NAMES]
    if calendared and len(calendared) == len(source_kinds):
        silent = sorted({k for k in calendared if not expected_announcement(k, day)})
        if len(silent) == len(set(calendared)):
            names = " and ".join(SOURCE_NAMES[k] for k in silent)
            reason = "at weekends" if day.weekday() >= 5 else "on their holidays"
            return f"No announcement on {day_label(day)}: {names} publish no papers {reason}."
    return f"No papers were stored for {day_label(day)}."


def source_kinds(ctx: Context) -> tuple[str, ...]:
    """The kinds of the configured sources (``hf-daily``, ``arxiv``, ``rss``, ``file``)."""
    spec = ctx.settings.sources if ctx.settings is not None else "hf-daily"
    return tuple(part.strip().split(":", 1)[0].lower() for part in spec.split(",") if part.strip())


class _Results:
    """Full ordered result lists of recent searches, each kept ``ttl`` seconds (LRU-bounded)."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._lists: OrderedDict[tuple[str, Order], tuple[float, list[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, Order]) -> list[int] | None:
        with self._lock:
            found = self._lists.get(key)
            if found is None or time.monotonic() - found[0] > self._ttl:
                return None
            self._lists.move_to_end(key)
            return found[1]

    def put(self, key: tuple[str, Order], ids: list[int]) -> None:
        with self._lock:
            self._lists[key] = (time.monotonic(), ids)
            self._lists.move_to_end(key)
            while len(self._lists) > RESULT_LISTS:
                self._lists.popitem(last=False)


class Catalog:
    """Builds the page data of the papers pages (the caller caches the rendered pages)."""

    def __init__(self, ctx: Context, *, cache_seconds: float = 60.0) -> None:
        self.ctx = ctx
        self.index = StoreSearch(ctx.session_factory, ctx.clock, refresh_seconds=cache_seconds)
        self._results = _Results(cache_seconds)
        self._kinds = source_kinds(ctx)

    def day(self, day: date | None, page: int) -> DayPage:
        """One page of a day's papers (default: the latest day with papers)."""
        with self.ctx.session_factory() as session:
            if day is None:
                day = catalog_repo.latest_day(session) or self.ctx.clock().date()
            total = catalog_repo.count_on_day(session, day)
            pager = _pager(page, DAY_PAGE_SIZE, total)
            papers = catalog_repo.papers_on_day(session, day, DAY_PAGE_SIZE, pager.offset)
            before = catalog_repo.previous_day(session, day)
            after = catalog_repo.next_day(session, day)
        notice = None if total else no_papers_notice(day, self.ctx.clock().date(), self._kinds)
        return DayPage(day, tuple(papers), pager, before, after, notice)

    def search(self, query: str, order: Order, page: int) -> SearchPage:
        """One page of the stored papers a profile matches, highlighted as in the digest."""
        text = query.strip()
        try:
            profile = parse_profile(text)
        except ProfileError as exc:
            pager = Pager(1, SEARCH_PAGE_SIZE, 0)
            return SearchPage(text, order.value, (), pager, str(exc), exc.position)
        ids = self._results.get((text, order))
        if ids is None:
            ids = self.index.search(profile, order)
            self._results.put((text, order), ids)
        pager = _pager(page, SEARCH_PAGE_SIZE, len(ids))
        shown = ids[pager.offset : pager.offset + SEARCH_PAGE_SIZE]
        matches = self._explain(profile, shown)
        return SearchPage(text, order.value, matches, pager, considered=self.index.size)

    def _explain(self, profile: Profile, ids: Sequence[int]) -> tuple[Match, ...]:
        """The shown papers with why they matched (words, spans), in the given order."""
        with self.ctx.session_factory() as session:
            papers = catalog_repo.papers_with_ids(session, ids)
        explained = {m.paper.id: m for m in PaperIndex(list(papers.values())).match(profile)}
        return tuple(explained[i] for i in ids if i in explained)


def _pager(page: int, per_page: int, total: int) -> Pager:
    pager = Pager(page, per_page, total)
    if page > pager.pages:
        raise PageNotFound(f"there is no page {page}: the last one is {pager.pages}")
    return pager
