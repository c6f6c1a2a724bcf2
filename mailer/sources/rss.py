"""``rss:URL``: any RSS 2.0 / RSS 1.0 / Atom feed, read with feedparser.

Per entry: title (required), summary (HTML reduced to text), link, authors, tags as
categories and the published (else updated) date. The identity is an arXiv id when the id or the
link reveals one, else ``rss:<guid or id>``, else ``url:<link>``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import date
from functools import partial
from typing import Any

import httpx

from mailer.errors import PayloadError, SourceError
from mailer.logs import masked
from mailer.models import Paper
from mailer.sources import fields
from mailer.sources.base import FetchResult, ParseResult, Validators
from mailer.sources.batch import DEFAULT_MAX_ITEMS, Batch
from mailer.sources.http import DEFAULT_POLICY, HttpPolicy, conditional_get, require_content_type
from mailer.sources.identity import arxiv_links, normalise_arxiv_id, paper_identity

KIND = "rss"
_FEED_TYPES = ("xml", "rss", "atom", "rdf")


def _authors(entry: Any) -> tuple[str, ...]:
    names = fields.string_list(entry.get("authors"))
    if names:
        return names
    return fields.string_list(entry.get("author", ""))


def _day(entry: Any) -> date | None:
    stamp: time.struct_time | None = entry.get("published_parsed") or entry.get("updated_parsed")
    return date(stamp.tm_year, stamp.tm_mon, stamp.tm_mday) if stamp else None


def parse_entry(entry: Any, source: str = KIND) -> Paper:
    """One feedparser entry as a Paper; ValueError with a short reason when unusable."""
    title = fields.strip_tags(entry.get("title", "") or "")
    if not title:
        raise ValueError("no title")
    link = fields.optional_text(entry.get("link"))
    own_id = fields.optional_text(entry.get("id"))
    try:
        key = paper_identity(own_id=own_id, url=link, namespace=KIND)
    except ValueError:
        raise ValueError("no id or link") from None
    arxiv_id = normalise_arxiv_id(key)
    abs_url, pdf_url = arxiv_links(arxiv_id) if arxiv_id else (None, None)
    tags = [t.get("term") for t in entry.get("tags") or [] if isinstance(t, dict)]
    return Paper(
        key=key,
        arxiv_id=arxiv_id,
        title=title,
        abstract=fields.strip_tags(entry.get("summary", "") or ""),
        authors=_authors(entry),
        categories=fields.string_list(tags),
        url=link or abs_url,
        pdf_url=pdf_url,
        published=_day(entry),
        source=source,
    )


def _feedparser() -> Any:
    # Imported on first use so the other sources work where feedparser is not installed.
    try:
        import feedparser
    except ImportError as exc:
        raise SourceError(
            "rss: sources need the feedparser package (pip install feedparser)"
        ) from exc
    return feedparser


def _read_feed(feedparser: Any, data: bytes, source: str) -> Any:
    try:
        return feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    except RecursionError:
        raise PayloadError(f"{source}: feed nested too deeply to read") from None


def parse(data: bytes, source: str = KIND, max_items: int = DEFAULT_MAX_ITEMS) -> ParseResult:
    """Parse feed bytes (never a URL: feedparser would fetch it); bad entries are skipped."""
    feedparser = _feedparser()
    feed = _read_feed(feedparser, data, source)
    entries = feed.get("entries") or []
    if feed.get("bozo") and not entries:
        reason = str(feed.get("bozo_exception") or "unreadable feed")[:200]
        raise PayloadError(f"{source}: not a readable feed ({reason})")
    if not entries and not feed.get("version"):
        raise PayloadError(f"{source}: not an RSS or Atom feed")
    notes: tuple[str, ...] = ()
    problem = feed.get("bozo_exception")
    if problem is not None and not isinstance(problem, feedparser.CharacterEncodingOverride):
        notes = (f"feed: malformed XML read leniently ({str(problem)[:160]})",)
    batch = Batch(max_items)
    for index, entry in enumerate(entries, start=1):
        batch.add(f"entry {index}", partial(parse_entry, entry, source))
    return batch.result(notes)


class RssSource:
    """Any RSS or Atom feed at a URL."""

    kind = KIND

    def __init__(self, url: str, policy: HttpPolicy = DEFAULT_POLICY) -> None:
        self.url = url
        self.policy = policy
        # The name is stored, logged and shown: never with the feed's credentials in it.
        self.name = f"{KIND}:{masked(url)}"

    async def fetch(
        self, client: httpx.AsyncClient, validators: Validators, day: date
    ) -> FetchResult:
        """Fetch the feed (``day`` is ignored: a feed has no history)."""
        response = await conditional_get(
            client,
            self.url,
            name=self.name,
            validators=validators,
            policy=self.policy,
            accept="application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.1",
        )
        if response.not_modified:
            return FetchResult(not_modified=True, validators=response.validators)
        require_content_type(response, self.name, _FEED_TYPES)
        parsed = parse(response.body, self.name, self.policy.limits.max_items)
        return FetchResult.from_parse(parsed, response.validators, None)

    async def fetch_since(
        self, client: httpx.AsyncClient, validators: Validators, day: date, since: date | None
    ) -> AsyncIterator[FetchResult]:
        """A feed has no history: one ``fetch``."""
        yield await self.fetch(client, validators, day)
