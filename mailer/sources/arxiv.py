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
from collections.abc import AsyncIterator
from datetime import date, datetime
from zoneinfo import ZoneInfo

import httpx

from mailer.errors import PayloadError
from mailer.models import Paper
from mailer.sources.base import FetchResult, ParseResult, Validators
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
        raise ValueError(f"arXiv error: {_text(entry, 'atom:summary') or 'no detail'}")
    raw_id = _text(entry, "atom:id")
    link = entry.find("atom:link[@rel='alternate']", _NS)
    arxiv_id = normalise_arxiv_id(raw_id) or (
        normalise_arxiv_id(link.get("href", "")) if link is not None else None
    )
    if arxiv_id is None:
        raise ValueError(f"no arXiv id ({raw_id or 'missing'})")
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


def _root(data: bytes, source: str) -> ET.Element:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise PayloadError(f"{source}: invalid XML ({exc})") from exc
    if root.tag != f"{{{_NS['atom']}}}feed":
        raise PayloadError(f"{source}: not an Atom feed (root element {root.tag!r})")
    return root


def parse(
    data: bytes, source: str = KIND, types: frozenset[str] = DEFAULT_TYPES
) -> tuple[ParseResult, date | None]:
    """Parse a feed into (papers of the wanted announce types, the announcement day).

    Entries of other announce types are left out without counting as skipped.
    """
    root = _root(data, source)
    entries = root.findall("atom:entry", _NS)
    papers: list[Paper] = []
    reasons: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, start=1):
        try:
            paper, kind = parse_entry(entry, source)
        except ValueError as exc:
            reasons.append(f"entry {index}: {exc}")
            continue
        if kind not in types:
            continue
        if paper.key in seen:
            reasons.append(f"entry {index}: duplicate of {paper.key}")
            continue
        seen.add(paper.key)
        papers.append(paper)
    if entries and len(reasons) == len(entries) and all("arXiv error" in r for r in reasons):
        raise PayloadError(f"{source}: {reasons[0].split(': ', 1)[1]}")
    return ParseResult(tuple(papers), tuple(reasons)), _feed_day(root, entries)


def _feed_day(root: ET.Element, entries: list[ET.Element]) -> date | None:
    for entry in entries:
        day = _timestamp_day(_text(entry, "atom:published"))
        if day is not None:
            return day
    return _timestamp_day(_text(root, "atom:updated"))


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
        parsed, feed_day = parse(response.body, self.name, self.types)
        return FetchResult.from_parse(parsed, response.validators, feed_day)

    async def fetch_since(
        self, client: httpx.AsyncClient, validators: Validators, day: date, since: date | None
    ) -> AsyncIterator[FetchResult]:
        """The feed only holds the latest announcement, so catching up is one ``fetch``."""
        yield await self.fetch(client, validators, day)
