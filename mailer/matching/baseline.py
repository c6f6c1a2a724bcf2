"""A deliberately naive matcher: every profile against every paper in a loop.

It shares tokenisation and the scoring formulas with the engine but none of its index, caches
or set algebra, so the property tests can check the engine against it and the benchmark can
measure what the engine buys.
"""

from __future__ import annotations

from collections.abc import Sequence, Set

from mailer.matching.explain import Doc, analyze_paper, author_matches, explain, occurrences
from mailer.matching.profile import ALL, AUTHOR, CATEGORY, TITLE, Interest, Profile, Term
from mailer.matching.scoring import (
    final_score,
    idf,
    length_norms,
    name_score,
    popularity,
    text_score,
)
from mailer.models import Match, Paper


class NaiveMatcher:
    """Checks each term of each interest against each paper, counting document frequencies."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = tuple(papers)
        self.docs = tuple(analyze_paper(p) for p in self.papers)
        self._title_norm = length_norms([len(d.title.stems) for d in self.docs])
        self._abstract_norm = length_norms([len(d.abstract.stems) for d in self.docs])

    def _counts(self, term: Term, doc: Doc) -> tuple[int, int] | None:
        """(title, abstract) hit counts of a term in one paper, None when it does not match."""
        if term.kind == ALL:
            return 0, 0
        if term.kind == AUTHOR:
            return (1, 0) if author_matches(doc, term) is not None else None
        if term.kind == CATEGORY:
            return (1, 0) if term.values[0] in doc.categories else None
        in_title = len(occurrences(doc.title, term.values))
        in_abstract = 0 if term.field == TITLE else len(occurrences(doc.abstract, term.values))
        return (in_title, in_abstract) if in_title or in_abstract else None

    def _term_scores(self, term: Term) -> list[float | None]:
        """The term's score in every paper (None = no match), from a full scan."""
        counts = [self._counts(term, doc) for doc in self.docs]
        term_idf = idf(len(self.docs), sum(c is not None for c in counts))
        scores: list[float | None] = []
        for p, c in enumerate(counts):
            if c is None or term.kind == ALL:
                scores.append(None if c is None else 0.0)
            elif term.kind in (AUTHOR, CATEGORY):
                scores.append(name_score(term_idf))
            else:
                scores.append(
                    text_score(term_idf, c[0], self._title_norm[p], c[1], self._abstract_norm[p])
                )
        return scores

    def match(
        self, profile: Profile, exclude: Set[int] = frozenset(), limit: int | None = None
    ) -> tuple[int, list[Match]]:
        """(number of matches, the best ``limit`` matches), ranked like the engine ranks them."""
        exclusions = [self._term_scores(t) for t in profile.exclusions]
        interests = [(i, [self._term_scores(t) for t in i.terms]) for i in profile.interests]
        found: list[tuple[float, int, str, int, list[Interest]]] = []
        for p, paper in enumerate(self.papers):
            if paper.id in exclude or any(e[p] is not None for e in exclusions):
                continue
            relevance, matched = 0.0, []
            for interest, term_scores in interests:
                if all(s[p] is not None for s in term_scores):
                    total = 0.0
                    for s in term_scores:
                        total += s[p] or 0.0
                    relevance += total
                    matched.append(interest)
            if matched:
                score = final_score(len(matched), relevance + popularity(paper.upvotes))
                found.append((-score, -(paper.upvotes or 0), paper.key, p, matched))
        found.sort(key=lambda f: f[:3])
        shown = found if limit is None else found[:limit]
        return len(found), [self._explain(-f[0], f[3], f[4]) for f in shown]

    def _explain(self, score: float, p: int, matched: list[Interest]) -> Match:
        """The full Match for one paper."""
        words, spans = explain(self.papers[p], self.docs[p], [t for i in matched for t in i.terms])
        return Match(self.papers[p], score, tuple(i.text for i in matched), words, spans)


def baseline_match(
    papers: Sequence[Paper], profile: Profile, exclude: Set[int] = frozenset()
) -> list[Match]:
    """Every match of one profile over ``papers``, computed the slow, obvious way."""
    return NaiveMatcher(papers).match(profile, exclude)[1]
