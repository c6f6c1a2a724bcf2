"""Why a paper matched: phrase occurrences, matched surface words and highlight spans."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailer.matching.profile import AUTHOR, CATEGORY, TEXT, TITLE, Term
from mailer.matching.scoring import merge_spans
from mailer.matching.text import Field, analyze, fold, name_tokens
from mailer.models import Paper, Span


@dataclass(frozen=True, slots=True)
class Doc:
    """A paper analysed once: its title and abstract fields, author names and categories."""

    title: Field
    abstract: Field
    authors: tuple[frozenset[str], ...]
    categories: frozenset[str]


def analyze_paper(paper: Paper) -> Doc:
    """Tokenise one paper (the only per-paper text work a batch does)."""
    categories = {fold(c.strip()) for c in paper.categories}
    categories |= {c.split(".", 1)[0] for c in categories}
    return Doc(
        title=analyze(paper.title),
        abstract=analyze(paper.abstract),
        authors=tuple(frozenset(name_tokens(a)) for a in paper.authors),
        categories=frozenset(categories),
    )


def occurrences(
    field: Field, stems: Sequence[str], starts: Iterable[int] | None = None
) -> list[int]:
    """Token indices where ``stems`` occur in order in ``field`` (checking only ``starts``)."""
    size = len(stems)
    tokens = field.stems
    wanted = tuple(stems)
    if starts is None:
        first = wanted[0]
        starts = (i for i, tok in enumerate(tokens) if tok == first)
    if size == 1:
        return list(starts)
    return [i for i in starts if tokens[i : i + size] == wanted]


def author_matches(doc: Doc, term: Term) -> int | None:
    """Index of the first author whose name holds every token of the term, else None."""
    wanted = frozenset(term.values)
    return next((i for i, names in enumerate(doc.authors) if wanted <= names), None)


def explain(
    paper: Paper, doc: Doc, terms: Sequence[Term]
) -> tuple[tuple[str, ...], tuple[Span, ...]]:
    """Matched surface words (profile order, deduplicated) and merged highlight spans."""
    return combine([explain_term(paper, doc, term) for term in terms])


def combine(
    explained: Sequence[tuple[str | None, tuple[Span, ...]]],
) -> tuple[tuple[str, ...], tuple[Span, ...]]:
    """Merge per-term explanations: words deduplicated case-insensitively, spans merged."""
    words: list[str] = []
    seen: set[str] = set()
    spans: list[Span] = []
    for surface, term_spans in explained:
        spans.extend(term_spans)
        if surface and surface.casefold() not in seen:
            seen.add(surface.casefold())
            words.append(surface)
    return tuple(words), merge_spans(spans)


def explain_term(
    paper: Paper,
    doc: Doc,
    term: Term,
    title_starts: Iterable[int] | None = None,
    abstract_starts: Iterable[int] | None = None,
) -> tuple[str | None, tuple[Span, ...]]:
    """One term in one paper: the first surface form it matched and all its spans.

    ``*_starts`` are where the term's first stem occurs, when an index already knows.
    """
    if term.kind == AUTHOR:
        found = author_matches(doc, term)
        return (paper.authors[found] if found is not None else None), ()
    if term.kind == CATEGORY:
        return next((c for c in paper.categories if _category_hit(c, term.values[0])), None), ()
    if term.kind != TEXT:
        return None, ()
    surface: str | None = None
    spans: list[Span] = []
    fields = [("title", doc.title, paper.title, title_starts)]
    if term.field != TITLE:
        fields.append(("abstract", doc.abstract, paper.abstract, abstract_starts))
    for name, field, original, starts in fields:
        for i in occurrences(field, term.values, starts):
            start, end = field.starts[i], field.ends[i + len(term.values) - 1]
            spans.append(Span(name, start, end))
            surface = surface or original[start:end]
    return surface, tuple(spans)


def _category_hit(category: str, wanted: str) -> bool:
    """A category equals the wanted one, or belongs to the wanted archive."""
    folded = fold(category.strip())
    return folded == wanted or folded.split(".", 1)[0] == wanted
