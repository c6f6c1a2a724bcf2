"""Pure helpers that read loosely-typed fields into clean, bounded Python values.

Whatever a source hands over, a stored paper keeps within the caps below (documented in the
README's limits table): text loses control characters and is cut at a word boundary, lists keep
their first entries, links must be http(s), and counts must fit a 32-bit column.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from html.parser import HTMLParser
from typing import Any

from mailer.errors import PayloadError
from mailer.models import Paper
from mailer.sources.identity import MAX_RAW_TEXT, clean_text

MAX_TITLE = 500  # characters; the longest real titles are about 300
MAX_ABSTRACT = 5_000  # arXiv caps abstracts at 1,920
MAX_AUTHORS = 200  # names kept per paper (large collaborations list thousands)
MAX_NAME = 200  # characters per author name, category or keyword
MAX_TERMS = 50  # categories, and keywords, kept per paper
MAX_URL = 2_000  # characters per link
MAX_KEY = 255  # the identity key's column
MAX_ARXIV_ID = 32  # the arxiv_id column
MAX_COUNT = 2**31 - 1  # upvotes and comments: a 32-bit INTEGER on every database
ELLIPSIS = "…"
_HTTP = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)
_MAX_DIGITS = 30  # a count written with more digits is junk, whatever its value


def load_json(data: bytes, name: str) -> Any:
    """Decode a JSON document, or raise PayloadError saying where it broke.

    A top-level array comes back as a :class:`JsonArray`, read one item at a time, so a
    100,000-item payload never exists as 100,000 objects at once.
    """
    document = decode_utf8(data, name)
    start = _skip_space(document, 0)
    if document.startswith("[", start):
        return JsonArray(document, start + 1, name)
    try:
        return json.loads(document)
    except (ValueError, RecursionError) as exc:
        raise _unreadable(document, exc, name) from None


class JsonArray:
    """The items of a top-level JSON array, decoded one by one as they are iterated.

    A syntax error anywhere raises PayloadError when the iteration reaches it, so the
    payload as a whole is refused exactly as a whole-document parse would refuse it.
    """

    def __init__(self, document: str, position: int, name: str) -> None:
        self._document = document
        self._position = position
        self._name = name

    def __iter__(self) -> Iterator[Any]:
        """Each item in turn."""
        document, name = self._document, self._name
        position = _skip_space(document, self._position)
        if document.startswith("]", position):
            yield from self._end(position)
            return
        while True:
            try:
                item, position = _DECODER.raw_decode(document, position)
            except (ValueError, RecursionError) as exc:
                raise _unreadable(document, exc, name) from None
            yield item
            position = _skip_space(document, position)
            if document.startswith(",", position):
                position = _skip_space(document, position + 1)
                continue
            if document.startswith("]", position):
                yield from self._end(position)
                return
            error = json.JSONDecodeError("Expecting ',' delimiter", document, position)
            raise _unreadable(document, error, name)

    def _end(self, position: int) -> Iterator[Any]:
        """Nothing, or PayloadError when anything but space follows the closing bracket."""
        rest = _skip_space(self._document, position + 1)
        if rest < len(self._document):
            error = json.JSONDecodeError("Extra data", self._document, rest)
            raise _unreadable(self._document, error, self._name)
        yield from ()


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(document: str, position: int) -> int:
    found = _SPACE.match(document, position)
    return found.end() if found else position


def _unreadable(document: str, exc: ValueError | RecursionError, name: str) -> PayloadError:
    """The PayloadError for a document the decoder refused."""
    if isinstance(exc, RecursionError):
        return PayloadError(f"{name}: JSON nested too deeply to read")
    if isinstance(exc, json.JSONDecodeError):
        hint = " (truncated?)" if _looks_truncated(document, exc.pos) else ""
        return PayloadError(
            f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
        )
    # e.g. an integer of more than 4,300 digits
    return PayloadError(f"{name}: unreadable JSON ({str(exc)[:80]})")


def _looks_truncated(document: str, error_at: int) -> bool:
    """An error at the very end, or an array/object that never closes, suggests a cut body."""
    body = document.strip()
    closing = {"[": "]", "{": "}"}.get(body[:1])
    return error_at >= len(body) - 1 or (closing is not None and not body.endswith(closing))


def decode_utf8(data: bytes, name: str) -> str:
    """Decode UTF-8 (a BOM is allowed), or raise PayloadError naming the bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"{name}: payload is not UTF-8 (byte {exc.start})") from exc


def text(value: Any) -> str:
    """A cleaned string, or "" for anything that is not a string."""
    return clean_text(value) if isinstance(value, str) else ""


def optional_text(value: Any) -> str | None:
    """A cleaned non-empty string, or None."""
    return text(value) or None


def optional_int(value: Any) -> int | None:
    """An int from an int (not a bool) or a digit string, else None.

    A digit string too long to be a real number raises ValueError (the item is junk).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        digits = value.strip()
        if len(digits) > _MAX_DIGITS:
            raise ValueError(f"a number of {len(digits):,} digits")
        return int(digits)
    return None


def count(value: Any, field: str) -> int | None:
    """A count (upvotes, comments) from ``value``; None when absent or not a number.

    ValueError naming the field when the number is outside 0..MAX_COUNT: the item is skipped
    rather than stored with a made-up figure.
    """
    number = optional_int(value)
    if number is None or 0 <= number <= MAX_COUNT:
        return number
    # str() of a huge int is slow (and refused past 4,300 digits): say its size instead.
    digits = number.bit_length() * 0.30103
    shown = f"{number:,}" if digits < 20 else f"of about {digits:.0f} digits"
    raise ValueError(f"{field} {shown} is out of range (0 to {MAX_COUNT:,})")


def optional_date(value: Any) -> date | None:
    """A date from ``YYYY-MM-DD`` or an ISO timestamp (``2025-08-05T13:32:39.000Z``)."""
    if not isinstance(value, str) or not value.strip():
        return None
    raw = value.strip()
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def string_list(value: Any) -> tuple[str, ...]:
    """Non-empty cleaned strings from a list of strings or ``{"name": ...}`` objects."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return ()
    out: list[str] = []
    for item in value:
        raw = item.get("name") if isinstance(item, dict) else item
        cleaned = text(raw)
        if cleaned:
            out.append(cleaned)
    return tuple(out)


_BLOCK_TAGS = {"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "h1", "h2", "h3", "h4"}


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")  # "<p>a</p><p>b</p>" reads "a b", inline tags add nothing

    def handle_endtag(self, tag: str) -> None:
        self.handle_starttag(tag, [])


def strip_tags(markup: str) -> str:
    """The text of an HTML fragment (feed summaries are HTML), whitespace collapsed."""
    if "<" not in markup:
        return clean_text(markup)
    parser = _TextOnly()
    parser.feed(markup[:MAX_RAW_TEXT])
    parser.close()
    return " ".join("".join(parser.parts).split())


def capped(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` characters, at a word boundary when one is near."""
    if len(value) <= limit:
        return value
    cut = value[: limit - len(ELLIPSIS)]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip() + ELLIPSIS


def capped_list(values: tuple[str, ...], entries: int, limit: int) -> tuple[str, ...]:
    """The first ``entries`` non-empty values, each cleaned and capped at ``limit``."""
    out: list[str] = []
    for value in values:
        cleaned = capped(clean_text(value), limit)
        if cleaned:
            out.append(cleaned)
            if len(out) == entries:
                break
    return tuple(out)


def link(value: str | None) -> str | None:
    """An http(s) link of at most MAX_URL characters, else None (other schemes are dropped)."""
    if not value:
        return None
    cleaned = clean_text(value)
    return cleaned if len(cleaned) <= MAX_URL and _HTTP.match(cleaned) else None


def _checked_count(value: int | None, field: str) -> int | None:
    if value is not None and not 0 <= value <= MAX_COUNT:
        return count(value, field)  # raises, naming the field
    return value


def bounded(paper: Paper) -> Paper:
    """``paper`` with every field cleaned and within the caps; ValueError when unusable.

    Every parser's papers pass through here, so no source can store a NUL, a 5 MB title or an
    integer its column cannot hold.
    """
    title = capped(clean_text(paper.title), MAX_TITLE)
    if not title:
        raise ValueError("no title")
    key = clean_text(paper.key)
    if not key or len(key) > MAX_KEY:
        raise ValueError(f"identity key of {len(key):,} characters (at most {MAX_KEY})")
    if paper.arxiv_id is not None and len(paper.arxiv_id) > MAX_ARXIV_ID:
        raise ValueError(f"arXiv id of {len(paper.arxiv_id):,} characters")
    return dataclasses.replace(
        paper,
        key=key,
        title=title,
        abstract=capped(clean_text(paper.abstract), MAX_ABSTRACT),
        authors=capped_list(paper.authors, MAX_AUTHORS, MAX_NAME),
        categories=capped_list(paper.categories, MAX_TERMS, MAX_NAME),
        keywords=capped_list(paper.keywords, MAX_TERMS, MAX_NAME),
        url=link(paper.url),
        pdf_url=link(paper.pdf_url),
        hf_url=link(paper.hf_url),
        code_url=link(paper.code_url),
        project_url=link(paper.project_url),
        thumbnail_url=link(paper.thumbnail_url),
        upvotes=_checked_count(paper.upvotes, "upvotes"),
        comments=_checked_count(paper.comments, "comments"),
    )
