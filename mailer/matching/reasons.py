"""Why papers matched, cached per batch: each term's and interest's surface words and spans.

A paper's reasons for matching a term or an interest do not depend on the subscriber, and
subscribers share most terms and many interests, so they are computed once per (term or
interest, paper) and kept. Results equal ``explain.explain``: surface words deduplicated
case-insensitively in profile order, highlight spans merged (title first, by position). Merging
is a union of intervals, so the spans of several terms or interests are the union of theirs,
however they are grouped: an interest's are its terms', a digest entry's its interests'.

Words and spans are kept in two dicts rather than as pairs: a tuple of strings drops out of the
garbage collector's view, a pair holding spans would not, and every full collection walks all
of these. For the same reason a term's Span objects are shared by every interest using it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from operator import attrgetter

from mailer.matching.explain import Doc, explain_term
from mailer.matching.postings import Postings
from mailer.matching.profile import TEXT, TITLE, Term
from mailer.matching.scoring import merge_spans
from mailer.matching.text import Field
from mailer.models import Match, Paper, Span

Words = tuple[str, ...]
Spans = tuple[Span, ...]

_NO_POSITIONS: dict[int, tuple[int, ...]] = {}
# Sort key for merging one field's spans. Spans with equal starts merge whatever their order.
_START = attrgetter("start")
_new = object.__new__


def _setters(cls: type, names: str) -> list[Callable[[object, object], None]]:
    """The slot setters of a slotted dataclass, in ``names`` order (checked: all its fields)."""
    assert names.split() == [f.name for f in fields(cls)], f"{cls.__name__} fields changed"
    return [vars(cls)[name].__set__ for name in names.split()]


_set_field, _set_start, _set_end = _setters(Span, "field start end")
(
    _set_paper,
    _set_score,
    _set_interests,
    _set_terms,
    _set_spans,
    _set_learned,
    _set_resembles,
) = _setters(Match, "paper score interests terms spans learned resembles")


def new_span(field: str, start: int, end: int) -> Span:
    """``Span(field, start, end)`` without the frozen dataclass's ``__init__``, which sets each
    field through ``object.__setattr__`` (about twice the time); an equal object."""
    span: Span = _new(Span)
    _set_field(span, field)
    _set_start(span, start)
    _set_end(span, end)
    return span


def new_match(
    paper: Paper, score: float, interests: tuple[str, ...], terms: Words, spans: Spans
) -> Match:
    """``Match(...)`` the quick way, as ``new_span`` (a digest makes 25 of them)."""
    match: Match = _new(Match)
    _set_paper(match, paper)
    _set_score(match, score)
    _set_interests(match, interests)
    _set_terms(match, terms)
    _set_spans(match, spans)
    _set_learned(match, None)
    _set_resembles(match, None)
    return match


class Reasons:
    """One term's or interest's reasons, per paper index: surface words and merged spans.

    A term knows where its first stem occurs (paper -> token positions) in the title and the
    abstract; an interest of several terms knows its terms' Reasons.
    """

    __slots__ = ("abstract", "kind", "parts", "spans", "stems", "term", "title", "words")

    def __init__(self, term: Term | None, parts: Sequence[Reasons] = ()) -> None:
        self.words: dict[int, Words] = {}
        self.spans: dict[int, Spans] = {}
        self.term = term
        self.kind = "" if term is None else term.kind
        self.stems = () if term is None else term.values
        self.parts = parts
        self.title = self.abstract = _NO_POSITIONS


class Explainer:
    """Computes and caches reasons over one batch's papers and positional postings."""

    def __init__(
        self,
        papers: Sequence[Paper],
        docs: Sequence[Doc],
        title: Postings,
        abstract: Postings,
        spend: Callable[[int], None],
    ) -> None:
        self._papers = papers
        self._docs = docs
        self._title = title
        self._abstract = abstract
        self._spend = spend  # the index's cache budget: one entry per cached paper
        self._terms: dict[Term, Reasons] = {}
        self._interests: dict[tuple[Term, ...], Reasons] = {}

    def clear(self) -> None:
        """Forget every cached reason."""
        self._terms.clear()
        self._interests.clear()

    def of_interest(self, terms: tuple[Term, ...]) -> Reasons:
        """The (shared) reasons of an interest; a one-term interest's are its term's."""
        if len(terms) == 1:
            return self.of_term(terms[0])
        found = self._interests.get(terms)
        if found is None:
            found = Reasons(None, tuple([self.of_term(t) for t in terms]))
            self._interests[terms] = found
        return found

    def of_term(self, term: Term) -> Reasons:
        """The (shared) reasons of a term."""
        found = self._terms.get(term)
        if found is None:
            found = self._terms[term] = Reasons(term)
            if term.kind == TEXT:
                found.title = self._title.positions.get(term.values[0], _NO_POSITIONS)
                if term.field != TITLE:
                    found.abstract = self._abstract.positions.get(term.values[0], _NO_POSITIONS)
        return found

    def spans(self, reasons: Reasons, p: int) -> Spans:
        """Spans of ``reasons`` in paper ``p``; computed and cached with its words."""
        found = reasons.spans.get(p)
        if found is not None:
            return found
        if reasons.kind == TEXT:
            words, found = self._text(reasons, p)
        elif reasons.term is not None:
            surface, spans = explain_term(self._papers[p], self._docs[p], reasons.term)
            words, found = ((surface,) if surface else ()), merge_spans(spans)
        else:
            spans_of = self.spans  # (an empty tuple is cached too: asking again finds it)
            words, found = union(
                [(r.spans.get(p) or spans_of(r, p), r.words[p]) for r in reasons.parts]
            )
        reasons.words[p] = words
        reasons.spans[p] = found
        self._spend(len(found))
        return found

    def parts(self, interests: Sequence[Reasons], p: int) -> list[tuple[Spans, Words]]:
        """The (spans, words) of several interests in paper ``p``, to unite: an interest of
        several terms not yet explained there gives its terms' (a paper listed for matching
        several interests rarely needs that interest's own reasons again), each term once."""
        found: list[tuple[Spans, Words]] = []
        seen: set[int] = set()  # terms already given (interests often share one)
        for reasons in interests:
            spans = reasons.spans.get(p)
            if spans is not None:
                found.append((spans, reasons.words[p]))
                continue
            for term in reasons.parts or (reasons,):
                if id(term) in seen:
                    continue
                seen.add(id(term))
                spans = term.spans.get(p)
                if spans is None:
                    spans = self.spans(term, p)
                found.append((spans, term.words[p]))
        return found

    def _text(self, reasons: Reasons, p: int) -> tuple[Words, Spans]:
        """A word or phrase in one paper: the surface form of its first occurrence (title
        before abstract) and the merged spans of all, as ``explain_term`` finds them."""
        doc, paper, stems = self._docs[p], self._papers[p], reasons.stems
        surface = ""
        spans: list[Span] = []
        at = reasons.title.get(p)
        if at:
            surface, spans = _occurrences("title", doc.title, paper.title, stems, at)
        at = reasons.abstract.get(p)
        if at:
            found, more = _occurrences("abstract", doc.abstract, paper.abstract, stems, at)
            surface = surface or found
            spans += more
        return ((surface,) if surface else ()), tuple(spans)


def _occurrences(
    name: str, field: Field, original: str, stems: tuple[str, ...], at: Sequence[int]
) -> tuple[str, list[Span]]:
    """Where ``stems`` occur in one field, ``at`` being where the first stem does: the first
    occurrence's surface text and the merged spans of all (token order is offset order)."""
    last = len(stems) - 1
    if last:
        tokens = field.stems
        at = [i for i in at if tokens[i : i + last + 1] == stems]
        if not at:
            return "", []
    starts, ends = field.starts, field.ends
    first = at[0]
    low, high = starts[first], ends[first + last]
    surface = original[low:high]
    if not surface:  # never for a real token; kept so the rule is explain_term's exactly
        surface = next(filter(None, (original[starts[i] : ends[i + last]] for i in at)), "")
    if len(at) == 1:
        return surface, [new_span(name, low, high)]
    spans: list[Span] = []
    for i in at:
        start, end = starts[i], ends[i + last]
        if start > high:
            spans.append(new_span(name, low, high))
            low, high = start, end
        elif end > high:
            high = end
    spans.append(new_span(name, low, high))
    return surface, spans


def union(parts: Sequence[tuple[Spans, Words]]) -> tuple[Words, Spans]:
    """The reasons of several terms or interests, each given as (spans, words): words
    deduplicated case-insensitively in order, spans merged (title first, by position). It
    runs for every listed paper that matched several interests: each group's spans are merged
    and title-first already, so they are split by field without sorting the field names."""
    words: Words = ()
    folded: set[str] | None = None
    title: list[Span] = []
    abstract: list[Span] = []
    groups = 0
    for more_spans, more in parts:
        if more:
            if words:
                if folded is None:
                    folded = {word.casefold() for word in words}
                for word in more:  # deduplicated within itself already
                    key = word.casefold()
                    if key not in folded:
                        folded.add(key)
                        words += (word,)
            else:
                words = more
        if more_spans:
            groups += 1
            if more_spans[-1].field == "title":
                title += more_spans
            elif more_spans[0].field != "title":
                abstract += more_spans
            else:
                for span in more_spans:
                    (title if span.field == "title" else abstract).append(span)
    if groups < 2:  # one group's spans are merged already
        return words, (*title, *abstract)
    return words, (*_merged(title), *_merged(abstract))


def _merged(spans: list[Span]) -> list[Span]:
    """One field's spans (several groups') sorted by start and merged where they overlap or
    touch: the union of their intervals."""
    if len(spans) < 2:
        return spans
    spans.sort(key=_START)
    merged: list[Span] = []
    low = spans[0]
    for span in spans:
        if span.start > low.end:
            merged.append(low)
            low = span
        elif span.end > low.end:
            low = new_span(low.field, low.start, span.end)
    merged.append(low)
    return merged
