"""Abstract snippets around the matched words, split into plain and highlighted runs (pure)."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
    out: list[Segment] = []
    pos = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        out += [Segment(text[pos:s]), Segment(text[s:e], hit=True)]
        pos = e
    out.append(Segment(text[pos:end]))
    return _tidy(out)


def _tidy(runs: Iterable[Segment]) -> list[Segment]:
    """Collapse whitespace across runs, keep it outside highlights, merge adjacent plain runs."""
    out: list[Segment] = []
    for run in runs:
        text = re.sub(r"\s+", " ", run.text)
        if out and out[-1].text.endswith(" "):
            text = text.lstrip(" ")
        core = text.strip(" ")
        pieces = [Segment(text[: text.find(core)] if core else text)]
        if core and run.hit:
            pieces += [Segment(core, hit=True), Segment(text[text.find(core) + len(core) :])]
        elif core:
            pieces = [Segment(text)]
        for piece in pieces:
            if not piece.text:
                continue
            if out and not out[-1].hit and not piece.hit:
                out[-1] = Segment(out[-1].text + piece.text)
            else:
                out.append(piece)
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
