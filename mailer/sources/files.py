"""``file:PATH``: papers from a local file, as JSON, JSONL or the plain-text listing format.

JSON is an array of paper objects (or an object with a ``papers`` array); JSONL is one paper
object per line. A paper object has:

- ``title`` (required); ``abstract`` or ``summary``;
- ``key`` (used verbatim as the identity), else ``arxiv_id`` / ``id`` (an arXiv id, with or
  without version, gives the identity ``2508.01234``; another ``id`` gives ``file:<id>``),
  else ``url``, else the title (``title:<sha1 of the normalised title>``);
- ``authors`` (list of names or of ``{"name": ...}``), ``categories``, ``keywords`` (lists, or
  comma-separated strings);
- ``url``, ``pdf_url``, ``hf_url``, ``code_url``, ``project_url``, ``thumbnail_url``;
- ``published`` (``YYYY-MM-DD`` or an ISO timestamp), ``upvotes``, ``comments`` (integers).

Unknown fields are ignored. Any other file (or a ``.txt`` one) is read as the listing format
described in :mod:`mailer.sources.listing`. A malformed object or line is skipped and counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import date
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx

from mailer.errors import FetchError, PayloadError
from mailer.models import Paper
from mailer.sources import fields, listing
from mailer.sources.base import FetchResult, ParseResult, Validators
from mailer.sources.identity import arxiv_links, normalise_arxiv_id, paper_identity

KIND = "file"


def _identity(obj: dict[str, Any], title: str) -> tuple[str, str | None]:
    """The identity key and the arXiv id (when any field reveals one)."""
    raw_ids = [fields.text(obj.get(k)) for k in ("arxiv_id", "id", "url")]
    arxiv_id = next((found for r in raw_ids if r and (found := normalise_arxiv_id(r))), None)
    key = fields.text(obj.get("key"))
    if key:
        return key, arxiv_id
    own = fields.text(obj.get("id")) or None
    url = fields.text(obj.get("url")) or None
    return paper_identity(arxiv_id=arxiv_id, own_id=own, url=url, title=title, namespace="file"), (
        arxiv_id
    )


def paper_from_object(obj: Any, source: str) -> Paper:
    """One paper object as a Paper; ValueError with a short reason when unusable."""
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    title = fields.text(obj.get("title"))
    if not title:
        raise ValueError("no title")
    key, arxiv_id = _identity(obj, title)
    abs_url, pdf_url = arxiv_links(arxiv_id) if arxiv_id else (None, None)
    return Paper(
        key=key,
        arxiv_id=arxiv_id,
        title=title,
        abstract=fields.text(obj.get("abstract")) or fields.text(obj.get("summary")),
        authors=fields.string_list(obj.get("authors")),
        categories=fields.string_list(obj.get("categories")),
        keywords=fields.string_list(obj.get("keywords")),
        url=fields.optional_text(obj.get("url")) or abs_url or listing.arxiv_title_search(title),
        pdf_url=fields.optional_text(obj.get("pdf_url")) or pdf_url,
        hf_url=fields.optional_text(obj.get("hf_url")),
        code_url=fields.optional_text(obj.get("code_url")),
        project_url=fields.optional_text(obj.get("project_url")),
        thumbnail_url=fields.optional_text(obj.get("thumbnail_url")),
        published=fields.optional_date(obj.get("published")),
        upvotes=fields.optional_int(obj.get("upvotes")),
        comments=fields.optional_int(obj.get("comments")),
        source=source,
    )


def _collect(items: list[tuple[str, Any]], source: str) -> ParseResult:
    """Papers from (label, object) pairs, skipping bad ones and repeated keys."""
    papers: list[Paper] = []
    reasons: list[str] = []
    seen: set[str] = set()
    for label, obj in items:
        try:
            paper = paper_from_object(obj, source)
        except ValueError as exc:
            reasons.append(f"{label}: {exc}")
            continue
        if paper.key in seen:
            reasons.append(f"{label}: duplicate of {paper.key}")
            continue
        seen.add(paper.key)
        papers.append(paper)
    return ParseResult(tuple(papers), tuple(reasons))


def parse_json(data: bytes, source: str = KIND) -> ParseResult:
    """A JSON array of paper objects (or ``{"papers": [...]}``)."""
    document = fields.load_json(data, source)
    if isinstance(document, dict):
        # A one-object document is either a wrapper or a single-line JSONL file.
        document = document["papers"] if isinstance(document.get("papers"), list) else [document]
    if not isinstance(document, list):
        raise PayloadError(f"{source}: expected a JSON array of papers")
    return _collect([(f"item {i}", obj) for i, obj in enumerate(document, 1)], source)


def parse_jsonl(data: bytes, source: str = KIND) -> ParseResult:
    """One paper object per line; blank lines are ignored, unreadable lines skipped."""
    items: list[tuple[str, Any]] = []
    bad: list[str] = []
    for number, line in enumerate(fields.decode_utf8(data, source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            bad.append(f"line {number}: invalid JSON ({exc.msg})")
    if bad and not items:
        raise PayloadError(f"{source}: no readable JSON line ({bad[0]})")
    parsed = _collect(items, source)
    return ParseResult(parsed.papers, tuple(bad) + parsed.skip_reasons)


def parse(data: bytes, source: str = KIND, suffix: str = "") -> ParseResult:
    """Parse a file's bytes, choosing the format from the suffix, else from the content."""
    text = fields.decode_utf8(data, source)
    head = text.lstrip()[:1]
    if suffix == ".txt" or (suffix not in (".json", ".jsonl") and head not in ("[", "{")):
        return listing.parse(text, source)
    if suffix == ".jsonl" or (head == "{" and _is_jsonl(text)):
        return parse_jsonl(data, source)
    return parse_json(data, source)


def _is_jsonl(text: str) -> bool:
    """A document starting with "{" is JSONL unless it is one JSON object as a whole."""
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return True
    return False


class FileSource:
    """A local file of papers; the ETag is the content's SHA-1, so an unchanged file is skipped."""

    kind = KIND

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"{KIND}:{path}"

    def read(self) -> bytes:
        """The file's bytes, or FetchError saying why it cannot be read."""
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise FetchError(f"{self.name}: cannot read the file ({exc.strerror})") from exc

    async def fetch(
        self, client: httpx.AsyncClient, validators: Validators, day: date
    ) -> FetchResult:
        """Read and parse the file; ``client`` and ``day`` are unused (files have no days)."""
        data = await asyncio.to_thread(self.read)
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        new = Validators(etag=etag, last_modified=self._mtime())
        if validators.etag == etag:
            return FetchResult(not_modified=True, validators=new)
        parsed = parse(data, self.name, self.path.suffix.lower())
        return FetchResult.from_parse(parsed, new, None)

    async def fetch_since(
        self, client: httpx.AsyncClient, validators: Validators, day: date, since: date | None
    ) -> AsyncIterator[FetchResult]:
        """A file has no days: one ``fetch``."""
        yield await self.fetch(client, validators, day)

    def _mtime(self) -> str | None:
        try:
            return formatdate(self.path.stat().st_mtime, usegmt=True)
        except OSError:
            return None
