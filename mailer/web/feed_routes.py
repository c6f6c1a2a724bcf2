"""The personal Atom feed: ``GET /feed/{token}``, with ETag / Last-Modified conditional GETs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mailer.context import Context
from mailer.db import feeds as feed_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.feeds import FeedState
from mailer.errors import TokenError
from mailer.models import Subscriber
from mailer.rendering.feed import build_feed, feed_entry
from mailer.rendering.views import profile_interests
from mailer.tokens import Purpose
from mailer.web.deps import Web, web_of

ATOM = "application/atom+xml; charset=utf-8"
# Feed readers poll; a digest comes at most once a day, so a quarter of an hour is plenty fresh.
CACHE = "private, max-age=900"
FORMAT_VERSION = "1"  # part of the ETag: a changed template must not be answered with a 304

routes = APIRouter()


@dataclass(frozen=True, slots=True)
class _Validators:
    """The feed's ETag and Last-Modified, from its newest sent digest."""

    etag: str
    modified: datetime

    @classmethod
    def of(cls, subscriber: Subscriber, state: FeedState) -> _Validators:
        key = f"{FORMAT_VERSION}:{subscriber.id}:{state.digests}:{state.last_digest_id}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        modified = state.last_sent_at or subscriber.confirmed_at or subscriber.created_at
        assert modified is not None  # every stored subscriber has a creation time
        return cls(f'"{digest}"', modified.replace(microsecond=0))

    def headers(self) -> dict[str, str]:
        return {
            "ETag": self.etag,
            "Last-Modified": format_datetime(self.modified, usegmt=True),
            "Cache-Control": CACHE,
            "X-Robots-Tag": "noindex",
        }

    def fresh(self, request: Request) -> bool:
        """True when the client's copy is current (If-None-Match wins over If-Modified-Since)."""
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None:
            tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
            return "*" in tags or self.etag in tags
        since = request.headers.get("if-modified-since")
        if since is None:
            return False
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError):
            return False  # an unreadable date is ignored, as RFC 9110 says
        return when.tzinfo is not None and when >= self.modified


def _subscriber_and_state(ctx: Context, subscriber_id: int) -> tuple[Subscriber, FeedState]:
    with ctx.session_factory() as session:
        row = subscriber_repo.get_row(session, subscriber_id)
        if row is None:
            raise TokenError("this feed no longer exists: the subscription was removed")
        return subscriber_repo.to_subscriber(row), feed_repo.feed_state(session, subscriber_id)


def _feed_xml(web: Web, subscriber: Subscriber, modified: datetime, self_url: str) -> str:
    ctx = web.ctx
    with ctx.session_factory() as session:
        items = feed_repo.feed_items(session, subscriber.id)
    entries = [feed_entry(ctx.base_url, i.match, i.sent_at, i.period) for i in items]
    feed = build_feed(
        base_url=ctx.base_url,
        feed_key=str(subscriber.id),
        self_url=self_url,
        interests=profile_interests(subscriber.profile),
        entries=entries,
        updated=modified,
    )
    return web.pages.env.get_template("web/feed.xml.j2").render(feed=feed)


@routes.api_route("/feed/{token}", methods=["GET", "HEAD"])
async def feed(request: Request, token: str) -> Response:
    """The subscriber's personal Atom feed: the papers of their digests, newest first."""
    web = web_of(request)
    try:
        subscriber_id = web.ctx.tokens.read_id(Purpose.FEED, token)
        subscriber, state = await run_in_threadpool(_subscriber_and_state, web.ctx, subscriber_id)
    except TokenError as exc:
        return web.pages.message("Feed not found", f"{exc}.", 404, link="/", link_text="Home")
    validators = _Validators.of(subscriber, state)
    if validators.fresh(request):
        return Response(status_code=304, headers=validators.headers())
    self_url = f"{web.ctx.base_url.rstrip('/')}/feed/{token}"
    body = await run_in_threadpool(_feed_xml, web, subscriber, validators.modified, self_url)
    return Response(body, media_type=ATOM, headers=validators.headers())
