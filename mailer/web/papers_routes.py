"""The public papers pages: ``GET /papers`` (a day, or a search) and ``GET /api/papers`` (JSON).

Pages are the same for every visitor (no cookie, no per-visitor token), so each rendered page
is cached for a minute per process and answered with an ETag; the cached path never leaves
the event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from mailer.errors import InputError
from mailer.matching import MAX_CHARS
from mailer.matching.store import Order
from mailer.rendering.papers import DayPage, SearchPage, day_label, short_day
from mailer.web.catalog import PageNotFound
from mailer.web.deps import Web, web_of
from mailer.web.page_cache import Rendered

HTML = "text/html; charset=utf-8"
JSON = "application/json"
MAX_PAGE = 10_000
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

routes = APIRouter()


@dataclass(frozen=True, slots=True)
class PapersQuery:
    """The query string of a papers page, checked: a day (or the latest), or a search."""

    day: date | None = None
    search: str | None = None
    order: Order = Order.NEWEST
    page: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> PapersQuery:
        """Read ``date``, ``q``, ``order`` and ``page``; InputError says what is wrong."""
        search = params.get("q")
        if search is not None:
            # Twice the profile limit: the parser then says how long it is; more is not read.
            search = search[: 2 * MAX_CHARS].strip() or None
        return cls(_day(params.get("date")), search, _order(params.get("order")), _page(params))

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies the page in the cache."""
        return (self.day, self.search, self.order, self.page)

    def url(self, **changes: Any) -> str:
        """This page's URL with some parameters changed (None drops one)."""
        values: dict[str, Any] = {
            "date": self.day.isoformat() if self.day else None,
            "q": self.search,
            "order": self.order.value if self.search and self.order != Order.NEWEST else None,
            "page": self.page if self.page != 1 else None,
            **changes,
        }
        kept = {k: v for k, v in values.items() if v is not None}
        return "/papers" + ("?" + urlencode(kept) if kept else "")


def _day(value: str | None) -> date | None:
    if not value:
        return None
    if not _DATE.fullmatch(value):
        raise InputError(f"date {value[:40]!r} is not a date: use YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"date {value!r} does not exist") from None


def _order(value: str | None) -> Order:
    try:
        return Order(value or Order.NEWEST.value)
    except ValueError:
        raise InputError("order must be 'newest' or 'relevance'") from None


def _page(params: Mapping[str, str]) -> int:
    value = params.get("page") or "1"
    if not value.isascii() or not value.isdigit() or not 1 <= int(value[:6]) <= MAX_PAGE:
        raise InputError(f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(value)


# -- building pages (in a worker thread, on a cache miss) -------------------------------------


def _subscribe_url(profile: str) -> str:
    return "/?" + urlencode({"profile": profile})


def _day_context(query: PapersQuery, page: DayPage) -> dict[str, Any]:
    def neighbour(day: date | None) -> dict[str, str] | None:
        if day is None:
            return None
        return {"url": query.url(date=day.isoformat(), page=None), "label": short_day(day)}

    pager = page.pager
    return {
        "title": f"Papers of {day_label(page.day)}",
        "wide": True,
        "views": page.views,
        "pager": pager,
        "notice": page.notice,
        "previous_day": neighbour(page.previous_day),
        "next_day": neighbour(page.next_day),
        "previous_url": (
            query.url(date=page.day.isoformat(), page=pager.previous) if pager.previous else None
        ),
        "next_url": query.url(date=page.day.isoformat(), page=pager.next) if pager.next else None,
        "subscribe_url": _subscribe_url("*"),
    }


def _search_context(query: PapersQuery, page: SearchPage) -> dict[str, Any]:
    pager = page.pager
    other = Order.NEWEST if page.order == Order.RELEVANCE else Order.RELEVANCE
    return {
        "title": "Search papers",
        "wide": True,
        "query": page.query,
        "order": page.order,
        "error": page.error,
        "error_position": page.error_position,
        "views": page.views,
        "pager": pager,
        "considered": page.considered,
        "previous_url": query.url(page=pager.previous) if pager.previous else None,
        "next_url": query.url(page=pager.next) if pager.next else None,
        "other_order_url": query.url(order=other.value, page=None),
        "subscribe_url": _subscribe_url(page.query),
    }


def _html(web: Web, query: PapersQuery) -> Rendered:
    try:
        if query.search is not None:
            found = web.catalog.search(query.search, query.order, query.page)
            body = web.pages.html("search", **_search_context(query, found))
            return Rendered.of(body.encode(), HTML, 400 if found.error else 200)
        day = web.catalog.day(query.day, query.page)
        return Rendered.of(web.pages.html("papers", **_day_context(query, day)).encode(), HTML)
    except PageNotFound as exc:
        body = web.pages.html(
            "message", title="Page not found", text=f"{exc}.", link=query.url(page=None),
            link_text="First page",
        )  # fmt: skip
        return Rendered.of(body.encode(), HTML, 404)


def _json(web: Web, query: PapersQuery) -> Rendered:
    try:
        if query.search is not None:
            found = web.catalog.search(query.search, query.order, query.page)
            return _json_body(found.json(), 400 if found.error else 200)
        return _json_body(web.catalog.day(query.day, query.page).json())
    except PageNotFound as exc:
        return _json_error(str(exc), 404)


def _json_body(data: dict[str, Any], status: int = 200) -> Rendered:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Rendered.of(body, JSON, status)


def _json_error(message: str, status: int) -> Rendered:
    return _json_body({"error": {"message": message, "position": None}}, status)


# -- routes -----------------------------------------------------------------------------------


@routes.api_route("/papers", methods=["GET", "HEAD"])
async def papers(request: Request) -> Response:
    """A day's papers (``?date=``, default the latest day) or a search (``?q=``)."""
    web = web_of(request)
    try:
        query = PapersQuery.parse(request.query_params)
    except InputError as exc:
        return web.pages.message(
            "Request not accepted", f"{exc}.", 400, link="/papers", link_text="Latest papers"
        )
    rendered = await web.page_cache.get(("html", *query.key), lambda: _html(web, query))
    return rendered.response(request)


@routes.api_route("/api/papers", methods=["GET", "HEAD"])
async def papers_api(request: Request) -> Response:
    """The same as JSON (field names documented in the README, "Papers API")."""
    web = web_of(request)
    try:
        query = PapersQuery.parse(request.query_params)
    except InputError as exc:
        return _json_error(str(exc), 400).response(request)
    rendered = await web.page_cache.get(("json", *query.key), lambda: _json(web, query))
    return rendered.response(request)
