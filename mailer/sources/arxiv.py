"""arXiv announcements: the Atom feed at ``MAILER_ARXIV_FEED_URL/CATS`` (e.g. ``cs.LG+cs.CL``).

Each entry carries ``<id>oai:arXiv.org:ID</id>``, a title, a summary prefixed with
"arXiv:ID Announce Type: new Abstract:", ``<category term=...>``, ``dc:creator`` (the authors,
comma separated) and ``arxiv:announce_type`` (new, cross, replace, replace-cross). Only new
and cross-listed papers are taken by default, so a replacement is never mailed again. The feed
holds the latest announcement only; its date is the ``day`` of the result. arXiv asks for at
most one request every 3 seconds, so every arXiv source shares one :class:`Throttle`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from zoneinfo import ZoneInfo

import httpx

from mailer.errors import PayloadError
from mailer.models import Paper
from mailer.sources.base import FetchResult, ParseResult, Validators
from mailer.sources.batch import DEFAULT_MAX_ITEMS, Batch
from mailer.sources.http import (
    DEFAULT_POLICY,
    HttpPolicy,
    Throttle,
    conditional_get,
    require_content_type,
)
from mailer.sources.identity import arxiv_links, clean_text, normalise_arxiv_id

KIND = "arxiv"
ANNOUNCE_TYPES = frozenset({"new", "cross", "replace", "replace-cross"})
DEFAULT_TYPES = frozenset({"new", "cross"})
ARXIV_THROTTLE = Throttle(3.0)  # process-wide: arXiv's limit is per client, not per feed
EASTERN = ZoneInfo("America/New_York")

_NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "arxiv": "http://arxiv.org/schemas/atom",
    "dc": "http://purl.org/dc/elements/1.1/",
}
_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s*(Abstract:\s*)?", re.IGNORECASE)
_AUTHOR_SPLIT = re.compile(r",\s*|\s+and\s+")
_CATEGORY = re.compile(r"^[A-Za-z-]+(\.[A-Za-z-]+)?$")


def _text(entry: ET.Element, path: str) -> str:
    found = entry.find(path, _NS)
    return clean_text("".join(found.itertext())) if found is not None else ""


def _timestamp_day(value: str) -> date | None:
    """The US-Eastern date of an ISO timestamp (arXiv dates its mailings in Eastern time)."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(EASTERN).date() if moment.tzinfo else moment.date()


def _is_error(entry: ET.Element) -> bool:
    return "/api/errors" in _text(entry, "atom:id") or _text(entry, "atom:title") == "Error"


def parse_entry(entry: ET.Element, source: str = KIND) -> tuple[Paper, str]:
    """One feed entry as (Paper, announce type); ValueError with a short reason when unusable."""
    if _is_error(entry):
        raise ValueError(f"arXiv error: {_text(entry, 'atom:summary')[:200] or 'no detail'}")
    raw_id = _text(entry, "atom:id")
    link = entry.find("atom:link[@rel='alternate']", _NS)
    arxiv_id = normalise_arxiv_id(raw_id) or (
        normalise_arxiv_id(link.get("href", "")) if link is not None else None
    )
    if arxiv_id is None:
        raise ValueError(f"no arXiv id ({raw_id[:40] or 'missing'})")
    title = _text(entry, "atom:title")
    if not title:
        raise ValueError(f"{arxiv_id}: no title")
    creators = _text(entry, "dc:creator")
    abs_url, pdf_url = arxiv_links(arxiv_id)
    paper = Paper(
        key=arxiv_id,
        arxiv_id=arxiv_id,
        title=title,
        abstract=_PREFIX.sub("", _text(entry, "atom:summary")),
        authors=tuple(a.strip() for a in _AUTHOR_SPLIT.split(creators) if a.strip()),
        categories=tuple(
            term for c in entry.findall("atom:category", _NS) if (term := c.get("term", ""))
        ),
        url=abs_url,
        pdf_url=pdf_url,
        published=_timestamp_day(_text(entry, "atom:published")),
        source=source,
    )
    return paper, _text(entry, "arxiv:announce_type").lower() or "new"


_FEED = f"{{{_NS['atom']}}}feed"
_ENTRY = f"{{{_NS['atom']}}}entry"
_CHUNK = 64 * 1024


@dataclass
class _Feed:
    """What streaming the document found besides its entries."""

    root: ET.Element | None = None
    entries: int = 0
    first_day: date | None = None


def _entries(data: bytes, source: str, feed: _Feed) -> Iterator[ET.Element]:
    """The feed's entries as each one closes, read incrementally and then dropped from the
    tree, so a feed of 100,000 entries never exists as one tree in memory."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    depth = 0
    for offset in [*range(0, len(data), _CHUNK), len(data)]:
        _feed_parser(parser, data, offset, source)  # the last offset closes the parser
        for item in parser.read_events():
            event, element = item[0], item[-1]  # start/end events carry (name, element)
            if not isinstance(element, ET.Element):
                continue
            depth += 1 if event == "start" else -1
            if event == "start" and feed.root is None:
                feed.root = _checked_root(element, source)
            elif event == "end" and depth == 1 and element.tag == _ENTRY and feed.root is not None:
                feed.entries += 1
                yield element
                feed.root.remove(element)


def _feed_parser(
    parser: ET.XMLPullParser[ET.Element], data: bytes, offset: int, source: str
) -> None:
    try:
        if offset < len(data):
            parser.feed(data[offset : offset + _CHUNK])
        else:
            parser.close()
    except ET.ParseError as exc:
        raise PayloadError(f"{source}: invalid XML ({exc})") from exc


def _checked_root(element: ET.Element, source: str) -> ET.Element:
    if element.tag != _FEED:
        raise PayloadError(f"{source}: not an Atom feed (root element {element.tag[:80]!r})")
    return element


def parse(
    data: bytes,
    source: str = KIND,
    types: frozenset[str] = DEFAULT_TYPES,
    max_items: int = DEFAULT_MAX_ITEMS,
) -> tuple[ParseResult, date | None]:
    """Parse a feed into (papers of the wanted announce types, the announcement day).

    Entries of other announce types are left out without counting as skipped.
    """
    feed = _Feed()
    batch = Batch(max_items)
    for index, entry in enumerate(_entries(data, source, feed), start=1):
        if feed.first_day is None:
            feed.first_day = _timestamp_day(_text(entry, "atom:published"))
        batch.add(f"entry {index}", partial(_wanted, entry, source, types))
    if feed.root is None:
        raise PayloadError(f"{source}: empty document")
    reasons = batch.reasons
    if feed.entries and len(reasons) == feed.entries and all("arXiv error" in r for r in reasons):
        raise PayloadError(f"{source}: {reasons[0].split(': ', 1)[1]}")
    return batch.result(), feed.first_day or _timestamp_day(_text(feed.root, "atom:updated"))


def _wanted(entry: ET.Element, source: str, types: frozenset[str]) -> Paper | None:
    paper, kind = parse_entry(entry, source)
    return paper if kind in types else None


def parse_categories(value: str) -> tuple[str, ...]:
    """``cs.LG+cs.CL`` as ("cs.LG", "cs.CL"); ValueError naming a malformed category."""
    cats = tuple(part.strip() for part in value.split("+"))
    for cat in cats:
        if not _CATEGORY.match(cat):
            raise ValueError(f"malformed arXiv category {cat!r}")
    return cats


class ArxivSource:
    """The announcement feed of one or more arXiv categories."""

    kind = KIND

    def __init__(
        self,
        feed_url: str,
        categories: tuple[str, ...],
        types: frozenset[str] = DEFAULT_TYPES,
        policy: HttpPolicy = DEFAULT_POLICY,
        throttle: Throttle = ARXIV_THROTTLE,
    ) -> None:
        self.categories = categories
        self.types = types
        self.url = f"{feed_url.rstrip('/')}/{'+'.join(categories)}"
        self.policy = policy
        self.throttle = throttle
        suffix = "" if types == DEFAULT_TYPES else "?announce=" + "+".join(sorted(types))
        self.name = f"{KIND}:{'+'.join(categories)}{suffix}"

    async def fetch(
        self, client: httpx.AsyncClient, validators: Validators, day: date
    ) -> FetchResult:
        """Fetch the latest announcement (``day`` is ignored: the feed has no history)."""
        response = await conditional_get(
            client,
            self.url,
            name=self.name,
            validators=validators,
            policy=self.policy,
            accept="application/atom+xml, application/xml;q=0.9",
            throttle=self.throttle,
        )
        if response.not_modified:
            return FetchResult(not_modified=True, validators=response.validators)
        require_content_type(response, self.name, ("xml", "atom"))
        parsed, feed_day = parse(response.body, self.name, self.types, self.policy.limits.max_items)
        return FetchResult.from_parse(parsed, response.validators, feed_day)

    async def fetch_since(
        self, client: httpx.AsyncClient, validators: Validators, day: date, since: date | None
    ) -> AsyncIterator[FetchResult]:
        """The feed only holds the latest announcement, so catching up is one ``fetch``."""
        yield await self.fetch(client, validators, day)
