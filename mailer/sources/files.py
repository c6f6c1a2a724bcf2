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

Unknown fields are ignored. A ``.txt`` file is read as the listing format described in
:mod:`mailer.sources.listing`. Any other name is refused when the source is configured, and a
file that is not a regular file, or is larger than ``Limits.max_bytes``, when it is read: a
``file:`` source must never turn ``/etc/passwd`` or ``/dev/zero`` into papers. A malformed
object or line is skipped and counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
from collections.abc import AsyncIterator, Iterable
from datetime import date
from email.utils import formatdate
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from mailer.errors import FetchError, PayloadError
from mailer.models import Paper
from mailer.sources import fields, listing
from mailer.sources.base import DEFAULT_LIMITS, FetchResult, Limits, ParseResult, Validators
from mailer.sources.batch import DEFAULT_MAX_ITEMS, Batch
from mailer.sources.identity import arxiv_links, normalise_arxiv_id, paper_identity

KIND = "file"
FORMATS = {".json": "a JSON array", ".jsonl": "JSON lines", ".txt": "the listing text format"}


def _identity(obj: dict[str, Any], title: str) -> tuple[str, str | None]:
    """The identity key and the arXiv id (when any field reveals one)."""
    raw_ids = [fields.text(obj.get(k)) for k in ("arxiv_id", "id", "url")]
    arxiv_id = next((found for r in raw_ids if r and (found := normalise_arxiv_id(r))), None)
    key = fields.text(obj.get("key"))
    if key:
        return paper_identity(own_id=key, namespace="key") if len(key) > 200 else key, arxiv_id
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
        upvotes=fields.count(obj.get("upvotes"), "upvotes"),
        comments=fields.count(obj.get("comments"), "comments"),
        source=source,
    )


def _collect(items: Iterable[tuple[str, Any]], source: str, max_items: int) -> Batch:
    """A batch of papers from (label, object) pairs, skipping bad ones and repeated keys."""
    batch = Batch(max_items)
    for label, obj in items:
        batch.add(label, partial(paper_from_object, obj, source))
    return batch


def parse_json(data: bytes, source: str = KIND, max_items: int = DEFAULT_MAX_ITEMS) -> ParseResult:
    """A JSON array of paper objects (or ``{"papers": [...]}``)."""
    document = fields.load_json(data, source)
    if isinstance(document, dict):
        # A one-object document is either a wrapper or a single-line JSONL file.
        document = document["papers"] if isinstance(document.get("papers"), list) else [document]
    if not isinstance(document, list | fields.JsonArray):
        raise PayloadError(f"{source}: expected a JSON array of papers")
    items = ((f"item {i}", obj) for i, obj in enumerate(document, 1))
    return _collect(items, source, max_items).result()


def parse_jsonl(data: bytes, source: str = KIND, max_items: int = DEFAULT_MAX_ITEMS) -> ParseResult:
    """One paper object per line; blank lines are ignored, unreadable lines skipped."""
    batch = Batch(max_items)
    readable = 0
    for number, line in enumerate(fields.decode_utf8(data, source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except RecursionError:
            batch.skip(f"line {number}", "nested too deeply")
            continue
        except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "unreadable number"
            batch.skip(f"line {number}", f"invalid JSON ({reason})")
            continue
        readable += 1
        batch.add(f"line {number}", partial(paper_from_object, obj, source))
    if batch.reasons and not readable:
        raise PayloadError(f"{source}: no readable JSON line ({batch.reasons[0]})")
    return batch.result()


def parse(
    data: bytes, source: str = KIND, suffix: str = "", max_items: int = DEFAULT_MAX_ITEMS
) -> ParseResult:
    """Parse a file's bytes, choosing the format from the suffix, else from the content."""
    text = fields.decode_utf8(data, source)
    head = text.lstrip()[:1]
    if suffix == ".txt" or (suffix not in (".json", ".jsonl") and head not in ("[", "{")):
        return listing.parse(text, source, max_items)
    if suffix == ".jsonl" or (head == "{" and _is_jsonl(text)):
        return parse_jsonl(data, source, max_items)
    return parse_json(data, source, max_items)


def _is_jsonl(text: str) -> bool:
    """A document starting with "{" is JSONL unless it is one JSON object as a whole."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return True
    return False


def _read_at_most(descriptor: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(descriptor, min(remaining, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def refusal(path: Path) -> str | None:
    """Why ``path`` cannot be a ``file:`` source by its name, or None when it can."""
    if path.suffix.lower() in FORMATS:
        return None
    kinds = ", ".join(f"{suffix} ({what})" for suffix, what in FORMATS.items())
    return f"a papers file must be named {kinds}; {path.name!r} is none of these"


class FileSource:
    """A local file of papers; the ETag is the content's SHA-1, so an unchanged file is skipped."""

    kind = KIND

    def __init__(self, path: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.limits = limits
        self.name = f"{KIND}:{path}"

    def read(self) -> bytes:
        """The file's bytes; FetchError saying why it cannot be read, PayloadError when it is
        not a regular file or is over ``limits.max_bytes``."""
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise FetchError(f"{self.name}: cannot read the file ({exc.strerror})") from exc
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise PayloadError(f"{self.name}: not a regular file")
            os.set_blocking(descriptor, True)
            data = _read_at_most(descriptor, self.limits.max_bytes + 1)
        except OSError as exc:
            raise FetchError(f"{self.name}: cannot read the file ({exc.strerror})") from exc
        finally:
            os.close(descriptor)
        if len(data) > self.limits.max_bytes:
            mib = self.limits.max_bytes / 1024 / 1024
            raise PayloadError(
                f"{self.name}: the file is over the {mib:,.1f} MiB limit (MAILER_FETCH_MAX_BYTES)"
            )
        return data

    async def fetch(
        self, client: httpx.AsyncClient, validators: Validators, day: date
    ) -> FetchResult:
        """Read and parse the file; ``client`` and ``day`` are unused (files have no days)."""
        data = await asyncio.to_thread(self.read)
        etag = '"' + hashlib.sha1(data).hexdigest() + '"'
        new = Validators(etag=etag, last_modified=self._mtime())
        if validators.etag == etag:
            return FetchResult(not_modified=True, validators=new)
        suffix = self.path.suffix.lower()
        parsed = parse(data, self.name, suffix, self.limits.max_items)
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
