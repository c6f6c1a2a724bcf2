"""A reader's own library as examples: BibTeX, RIS, CSL-JSON, or a list of arXiv ids (pure).

Zotero and Mendeley export all three formats. Each entry becomes a "more like this" example
from its own title and abstract, so nothing is fetched; a bare list of arXiv ids names papers
the store already holds, and the caller looks their text up there. Parsing uses maintained
parsers (bibtexparser, rispy, the standard json module); a file that does not parse, or has
no entry with a title, is refused whole with a message saying why.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rispy
from bibtexparser.entrypoint import parse_string as parse_bibtex

from mailer.errors import InputError

MAX_BYTES = 2 * 1024 * 1024
MAX_ENTRIES = 1000
MAX_TITLE = 500
MAX_ABSTRACT = 5000

_ARXIV_NEW = r"\d{4}\.\d{4,5}"
_ARXIV_OLD = r"[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_ID = re.compile(rf"(?:{_ARXIV_NEW}|{_ARXIV_OLD})(?:v\d+)?", re.IGNORECASE)
_ARXIV_LINE = re.compile(
    rf"(?:arxiv:|https?://(?:www\.)?arxiv\.org/(?:abs|pdf)/)?({_ARXIV_NEW}|{_ARXIV_OLD})"
    r"(?:v\d+)?(?:\.pdf)?/?",
    re.IGNORECASE,
)
_ARXIV_URL = re.compile(rf"arxiv\.org/(?:abs|pdf)/({_ARXIV_NEW}|{_ARXIV_OLD})", re.IGNORECASE)
_BIBTEX = re.compile(r"^\s*@[A-Za-z]+\s*[{(]", re.MULTILINE)
_RIS = re.compile(r"^TY  - ", re.MULTILINE)
_TEX_COMMAND = re.compile(r"\\[A-Za-z]+\*?\s*|\\(.)")


# bibtexparser logs a warning per block it cannot parse; the error raised here says it once.
logging.getLogger("bibtexparser.splitter").disabled = True


class LibraryError(InputError):
    """A library file that cannot be used; nothing was stored."""


@dataclass(frozen=True, slots=True)
class LibraryEntry:
    """One paper of the reader's library: its text, and its arXiv id or DOI when known."""

    title: str
    abstract: str = ""
    arxiv_id: str | None = None
    doi: str | None = None


@dataclass(frozen=True, slots=True)
class Library:
    """What a file held: usable entries, its format, and how many entries had no title."""

    format: str
    entries: tuple[LibraryEntry, ...]
    untitled: int = 0


def parse_library(data: bytes) -> Library:
    """The entries of a library file; LibraryError (saying why) when it is not usable."""
    if len(data) > MAX_BYTES:
        raise LibraryError(f"the file is over {MAX_BYTES // (1024 * 1024)} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LibraryError("the file is not UTF-8 text (export it as UTF-8)") from None
    if "\0" in text:
        raise LibraryError("the file is not text")
    stripped = text.strip()
    if not stripped:
        raise LibraryError("the file is empty")
    if stripped[0] in "[{":
        return _finish("CSL-JSON", _csl_json(stripped))
    if _BIBTEX.search(text):
        return _finish("BibTeX", _bibtex(text))
    if _RIS.search(text):
        return _finish("RIS", _ris(text))
    return _finish("arXiv ids", _arxiv_ids(text))


def _finish(kind: str, found: list[LibraryEntry]) -> Library:
    if len(found) > MAX_ENTRIES:
        raise LibraryError(f"the file has {len(found)} entries; at most {MAX_ENTRIES} at once")
    usable = tuple(e for e in found if e.title or (kind == "arXiv ids" and e.arxiv_id))
    if not usable:
        raise LibraryError(f"no entry with a title was found in this {kind} file")
    return Library(kind, usable, len(found) - len(usable))


def _entry(title: Any, abstract: Any, ids: Iterable[Any], doi: Any) -> LibraryEntry:
    return LibraryEntry(
        title=_clean(title)[:MAX_TITLE],
        abstract=_clean(abstract)[:MAX_ABSTRACT],
        arxiv_id=next((found for value in ids if (found := arxiv_id_in(value))), None),
        doi=_clean(doi).lower()[:200] or None,
    )


def _clean(value: Any) -> str:
    """Plain text: LaTeX commands and braces dropped, whitespace collapsed."""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if not isinstance(value, str):
        return ""
    value = _TEX_COMMAND.sub(lambda m: m.group(1) or "", value)
    return " ".join(value.replace("{", "").replace("}", "").split())


def arxiv_id_in(value: Any) -> str | None:
    """The arXiv id (without version) an id, ``arXiv:`` reference or arXiv URL names."""
    if not isinstance(value, str):
        return None
    found = _ARXIV_URL.search(value) or _ARXIV_ID.fullmatch(value.strip().removeprefix("arXiv:"))
    if found is None:
        return None
    return _bare(found.group(1) if found.re is _ARXIV_URL else found.group(0))


def _bare(ident: str) -> str:
    """An id without version, cased as the store keeps it (old-style "math.GT/0309136")."""
    ident = re.sub(r"v\d+$", "", ident)
    return ident if "/" in ident else ident.lower()


def _csl_json(text: str) -> list[LibraryEntry]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LibraryError(f"the file is not valid JSON: {exc}") from None
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, Mapping) for item in items):
        raise LibraryError("a CSL-JSON file is a list of objects, one per paper")
    return [
        _entry(
            item.get("title"),
            item.get("abstract"),
            (item.get("number"), item.get("URL"), item.get("id"), item.get("archive_location")),
            item.get("DOI"),
        )
        for item in items
    ]


def _bibtex(text: str) -> list[LibraryEntry]:
    library = parse_bibtex(text)
    if library.failed_blocks:
        line = getattr(library.failed_blocks[0], "start_line", None)
        where = f" (the entry starting on line {line + 1})" if isinstance(line, int) else ""
        raise LibraryError(f"the BibTeX file does not parse{where}")
    found = []
    for entry in library.entries:
        fields = {key.lower(): value for key, value in entry.fields_dict.items()}
        values = {key: field.value for key, field in fields.items()}
        found.append(
            _entry(
                values.get("title"),
                values.get("abstract"),
                (values.get("eprint"), values.get("url"), values.get("arxivid")),
                values.get("doi"),
            )
        )
    return found


def _ris(text: str) -> list[LibraryEntry]:
    try:
        records = rispy.loads(text)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise LibraryError(f"the RIS file does not parse: {exc}") from None
    if not records:
        raise LibraryError("the RIS file has no complete entry (TY ... ER)")
    return [
        _entry(
            r.get("title") or r.get("primary_title"),
            r.get("abstract") or r.get("notes_abstract"),
            [*(r.get("urls") or []), r.get("url")],
            r.get("doi"),
        )
        for r in records
    ]


def _arxiv_ids(text: str) -> list[LibraryEntry]:
    found = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ARXIV_LINE.fullmatch(line)
        if match is None:
            raise LibraryError(
                f"line {number} is not an arXiv id, and the file is not BibTeX, RIS or CSL-JSON"
            )
        found.append(LibraryEntry(title="", arxiv_id=_bare(match.group(1))))
    return found
