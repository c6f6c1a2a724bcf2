"""Abstract snippets around the matched words, split into plain and highlighted runs (pure)."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from mailer.models import Span

SNIPPET_CHARS = 300


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of text; ``hit`` marks matched words to highlight."""

    text: str
    hit: bool = False


def clean_spans(spans: Iterable[Span], field: str, length: int) -> list[tuple[int, int]]:
    """Spans of one field, clipped to the text, without empty ones, sorted and merged."""
    ranges = sorted(
        (max(0, s.start), min(length, s.end)) for s in spans if s.field == field and s.end > s.start
    )
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def segments(text: str, spans: Sequence[tuple[int, int]], start: int, end: int) -> list[Segment]:
    """Split ``text[start:end]`` into plain and highlighted runs, whitespace collapsed."""
    runs: list[tuple[str, bool]] = []
    pos = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        runs += [(text[pos:s], False), (text[s:e], True)]
        pos = e
    runs.append((text[pos:end], False))
    return _tidy(runs, single_spaced=_single_spaced(text))


_WHITESPACE = re.compile(r"\s+")
# Whitespace other than a plain space, or two spaces in a row: what collapsing would change.
_NOT_SINGLE_SPACE = re.compile(r"[^\S ]|  ")


@lru_cache(maxsize=4096)
def _single_spaced(text: str) -> bool:
    """Whether every run of whitespace in ``text`` is one plain space already.

    Then collapsing whitespace changes no part of it, and ``_tidy`` need not run the
    substitution on each run: stored abstracts are usually like that, and a snippet is built
    for nearly every listed paper of every digest. Cached: a run renders the same few hundred
    abstracts over and over.
    """
    return _NOT_SINGLE_SPACE.search(text) is None


def _tidy(runs: Iterable[tuple[str, bool]], *, single_spaced: bool = False) -> list[Segment]:
    """Collapse whitespace across runs, keep it outside highlights, merge adjacent plain runs.

    Runs are ``(text, hit)``. Plain text is gathered as one string and becomes a ``Segment``
    once it is complete: a snippet is built for nearly every listed paper of every digest,
    and a ``Segment`` per piece of each run was a large part of building one. The tests
    compare this with the piece-by-piece version it replaces.

    ``single_spaced``: the runs are pieces of a ``_single_spaced`` text, which collapsing
    leaves as it is.
    """
    out: list[Segment] = []
    plain = ""  # the plain run being gathered (a highlight never ends in a space)
    for raw, hit in runs:
        text = raw if single_spaced else _WHITESPACE.sub(" ", raw)
        if plain.endswith(" "):
            text = text.lstrip(" ")
        core = text.strip(" ") if hit else ""
        if not core:
            plain += text
            continue
        lead = len(text) - len(text.lstrip(" "))
        plain += text[:lead]
        if plain:
            out.append(Segment(plain))
        out.append(Segment(core, hit=True))
        plain = text[lead + len(core) :]
    if plain:
        out.append(Segment(plain))
    return out


def _window(text: str, spans: Sequence[tuple[int, int]], width: int) -> tuple[int, int]:
    """The ``width``-character window holding the most highlighted spans, on word boundaries."""
    if len(text) <= width:
        return 0, len(text)
    lead = width // 5
    starts, ends = [s for s, _ in spans], [e for _, e in spans]
    best, best_count, first = 0, -1, 0
    for i, (anchor, _) in enumerate(spans):
        start = max(0, anchor - lead)
        # spans are sorted and disjoint: those inside [start, start + width) are contiguous
        count = bisect_right(ends, start + width) - bisect_left(starts, start)
        if count > best_count:
            best, best_count, first = start, count, i
    start, end = best, min(len(text), best + width)
    if start > 0:
        sentence = text.rfind(". ", start, spans[first][0]) if spans else -1
        space = text.find(" ", start)
        start = sentence + 2 if sentence >= 0 else (space + 1 if 0 <= space < end else start)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    return start, end


CUT_BEFORE = Segment("… ")
"""Begins a snippet that starts after the start of the abstract."""
CUT_AFTER = Segment(" …")
"""Ends a snippet that stops before the end of the abstract."""


def snippet(text: str, spans: Iterable[Span], width: int = SNIPPET_CHARS) -> list[Segment]:
    """About ``width`` characters of ``text`` around the matched words, highlighted."""
    return snippet_of(text, abstract_ranges(text, spans), width)


def abstract_ranges(text: str, spans: Iterable[Span]) -> tuple[tuple[int, int], ...]:
    """The highlighted ranges of an abstract, as ``snippet_of`` takes them.

    Everything a snippet depends on besides the text: two readers whose words were found in
    the same places get the same snippet.
    """
    return tuple(clean_spans(spans, "abstract", len(text.rstrip())))


def snippet_of(
    text: str, ranges: Sequence[tuple[int, int]], width: int = SNIPPET_CHARS
) -> list[Segment]:
    """``snippet`` from an abstract's ``abstract_ranges``."""
    text = text.rstrip()
    start, end = _window(text, ranges, width)
    out = segments(text, ranges, start, end)
    if out and start > 0:
        out.insert(0, CUT_BEFORE)
    if out and end < len(text):
        out.append(CUT_AFTER)
    return out
