"""The plain-text "daily papers" listing: page-header lines, then title and abstract lines.

Titles and abstracts alternate one per line, with or without blank lines between them. Header
lines copied from the web page ("new", "Get trending papers in your email inbox!", "Subscribe",
"Daily Papers", "byAK and the research community", a date such as "Aug 6") are dropped from the
top, also when "Subscribe" is glued to the first title. Papers have no ids, so their identity is
a hash of the normalised title and their link an arXiv title search.
"""

from __future__ import annotations

import re
from functools import partial
from urllib.parse import urlencode

from mailer.models import Paper
from mailer.sources.base import ParseResult
from mailer.sources.batch import DEFAULT_MAX_ITEMS, Batch
from mailer.sources.identity import clean_text, normalise_title, title_key

_HEADERS = {
    "new",
    "get trending papers in your email inbox!",
    "get trending papers in your email inbox once a day!",
    "subscribe",
    "daily papers",
    "byak and the research community",
}
_DATE_LINE = re.compile(
    r"^(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(, \d{4})?$", re.I
)
_GLUED = "Subscribe"
# No real title is this long; a line this long is an abstract whose title is missing.
_MAX_TITLE = 400


def arxiv_title_search(title: str) -> str:
    """An arXiv search link for a title (listings carry no ids or links)."""
    return "https://arxiv.org/search/?" + urlencode({"query": title, "searchtype": "title"})


def _is_header(line: str) -> bool:
    return line.casefold() in _HEADERS or bool(_DATE_LINE.match(line))


def _body_lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines (with 1-based line numbers) after the page header."""
    lines = [(n, clean_text(raw)) for n, raw in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line]
    start = 0
    while start < len(lines) and _is_header(lines[start][1]):
        start += 1
    if start < len(lines):
        number, first = lines[start]
        rest = first[len(_GLUED) :]
        if first.startswith(_GLUED) and rest[:1].isupper():
            lines[start] = (number, rest)
    return lines[start:]


def _paper(title: str, abstract: str, source: str) -> Paper:
    if not normalise_title(title):
        raise ValueError("no title")
    return Paper(
        key=title_key(title),
        title=title,
        abstract=abstract,
        url=arxiv_title_search(title),
        source=source,
    )


def parse(data: str, source: str = "listing", max_items: int = DEFAULT_MAX_ITEMS) -> ParseResult:
    """Parse a listing into title-keyed papers; orphan lines and repeats are skipped."""
    body = _body_lines(data)
    batch = Batch(max_items)
    i = 0
    while i < len(body):
        number, title = body[i]
        if len(title) > _MAX_TITLE:
            batch.skip(f"line {number}", "text without a title")
            i += 1
            continue
        abstract = body[i + 1][1] if i + 1 < len(body) else ""
        if len(abstract) <= _MAX_TITLE and _followed_by_abstract(body, i + 1):
            abstract = ""  # the next line is the following paper's title
        i += 2 if abstract else 1
        batch.add(f"line {number}", partial(_paper, title, abstract, source))
    return batch.result()


def _followed_by_abstract(body: list[tuple[int, str]], index: int) -> bool:
    """True when the line at ``index`` is short and the line after it is abstract-long."""
    return index + 1 < len(body) and len(body[index + 1][1]) > _MAX_TITLE
