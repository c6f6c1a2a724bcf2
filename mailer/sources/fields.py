"""Small pure helpers that read loosely-typed JSON fields into clean Python values."""

from __future__ import annotations

import json
from datetime import date, datetime
from html.parser import HTMLParser
from typing import Any

from mailer.errors import PayloadError
from mailer.sources.identity import clean_text


def load_json(data: bytes, name: str) -> Any:
    """Decode a JSON document, or raise PayloadError saying where it broke."""
    document = decode_utf8(data, name)
    try:
        return json.loads(document)
    except json.JSONDecodeError as exc:
        hint = " (truncated?)" if _looks_truncated(document, exc.pos) else ""
        raise PayloadError(
            f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
        ) from exc


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
    """An int from an int (not a bool) or a digit string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


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
    parser.feed(markup)
    parser.close()
    return " ".join("".join(parser.parts).split())
