"""Ranking arithmetic shared by the engine and the baseline: BM25F relevance and the final score.

The final score is ``matched interests + r / (1 + r)`` where ``r`` is the summed relevance plus a
small popularity bonus: the integer part orders by how many interests matched, the fraction by
relevance, so sorting by score alone gives the documented order. Both matchers add the same
floats in the same order (interests in profile order, terms in interest order), so they agree
exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from mailer.models import Span

K1 = 1.2
B = 0.75
TITLE_WEIGHT = 3.0
ABSTRACT_WEIGHT = 1.0
NAME_WEIGHT = 3.0  # an author or category hit counts like a title hit
POPULARITY_WEIGHT = 0.1


def idf(papers: int, df: int) -> float:
    """BM25 inverse document frequency, always positive."""
    return math.log(1.0 + (papers - df + 0.5) / (df + 0.5))


def length_norms(lengths: Sequence[int]) -> list[float]:
    """BM25 length normalisation per document for one field."""
    average = (sum(lengths) / len(lengths)) if lengths else 0.0
    if average == 0.0:
        return [1.0] * len(lengths)
    return [1.0 - B + B * n / average for n in lengths]


def text_score(
    term_idf: float, tf_title: int, norm_title: float, tf_abs: int, norm_abs: float
) -> float:
    """BM25F contribution of one word or phrase in one paper (title hits weigh more)."""
    tf = TITLE_WEIGHT * tf_title / norm_title + ABSTRACT_WEIGHT * tf_abs / norm_abs
    return term_idf * tf * (K1 + 1.0) / (K1 + tf)


def text_scores(
    term_idf: float,
    papers: Iterable[int],
    tf_title: Mapping[int, int],
    norm_title: Sequence[float],
    tf_abs: Mapping[int, int],
    norm_abs: Sequence[float],
) -> dict[int, float]:
    """``text_score`` for many papers at once (counts default to 0): the same arithmetic,
    written out, since one call per paper is most of a term's lookup. Keep them identical."""
    k1, k1_plus, title_weight, abstract_weight = K1, K1 + 1.0, TITLE_WEIGHT, ABSTRACT_WEIGHT
    title_count, abstract_count = tf_title.get, tf_abs.get
    scores: dict[int, float] = {}
    for p in papers:
        tf = (
            title_weight * title_count(p, 0) / norm_title[p]
            + abstract_weight * abstract_count(p, 0) / norm_abs[p]
        )
        scores[p] = term_idf * tf * k1_plus / (k1 + tf)
    return scores


def name_score(term_idf: float) -> float:
    """Contribution of an author or category hit."""
    return term_idf * NAME_WEIGHT * (K1 + 1.0) / (K1 + NAME_WEIGHT)


def popularity(upvotes: int | None) -> float:
    """The secondary popularity signal added to relevance."""
    return POPULARITY_WEIGHT * math.log1p(max(upvotes or 0, 0))


def final_score(matched_interests: int, relevance: float) -> float:
    """Interests matched, then relevance squashed into [0, 1)."""
    return matched_interests + relevance / (1.0 + relevance)


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sort spans and merge overlapping or touching ones within a field."""
    spans = list(spans)
    if len(spans) < 2:  # the common case: one word, once
        return tuple(spans)
    merged: list[Span] = []
    for span in sorted(spans, key=_span_order):
        last = merged[-1] if merged else None
        if last is not None and last.field == span.field and span.start <= last.end:
            merged[-1] = Span(last.field, last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return tuple(merged)


_FIELD_ORDER = {"title": 0, "abstract": 1}


def _span_order(span: Span) -> tuple[int, int, int]:
    """Title spans first, then by position."""
    return _FIELD_ORDER.get(span.field, 2), span.start, span.end
