"""The batch engine: papers tokenised once, an inverted index of term -> bitset of papers.

A subscriber's result is set algebra on Python ints used as bitsets (bit i = paper i). Every
distinct term, and every distinct interest, is evaluated once per batch and cached, so a million
subscribers cost a handful of integer operations each plus scoring of their own matches.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import dataclass

from mailer.matching.explain import Doc, analyze_paper, author_matches, combine, explain_term
from mailer.matching.postings import Postings, iter_bits
from mailer.matching.profile import ALL, AUTHOR, CATEGORY, TITLE, Interest, Profile, Term
from mailer.matching.scoring import (
    final_score,
    idf,
    length_norms,
    name_score,
    popularity,
    text_score,
)
from mailer.models import Match, Paper, Span

_CACHE_LIMIT = 200_000  # distinct interests kept per batch before the cache is dropped


@dataclass(frozen=True, slots=True)
class Hits:
    """The papers a term or interest matches (a bitset) and its relevance in each of them."""

    bits: int
    scores: dict[int, float]


@dataclass(frozen=True, slots=True)
class Ranked:
    """One subscriber's outcome: how many papers matched and the best ``limit`` of them."""

    total: int
    matches: tuple[Match, ...]


class PaperIndex:
    """A batch of papers, tokenised once, matched against any number of profiles."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers: tuple[Paper, ...] = tuple(papers)
        self.docs: tuple[Doc, ...] = tuple(analyze_paper(p) for p in self.papers)
        self.size = len(self.papers)
        self._every = (1 << self.size) - 1
        self._title = Postings([d.title.stems for d in self.docs])
        self._abstract = Postings([d.abstract.stems for d in self.docs])
        self._title_norm = length_norms([len(d.title.stems) for d in self.docs])
        self._abstract_norm = length_norms([len(d.abstract.stems) for d in self.docs])
        self._popularity = [popularity(p.upvotes) for p in self.papers]
        order = sorted(
            range(self.size), key=lambda i: (-(self.papers[i].upvotes or 0), self.papers[i].key)
        )
        self._tiebreak = [0] * self.size
        for rank, p in enumerate(order):
            self._tiebreak[p] = rank
        self._by_id = {p.id: i for i, p in enumerate(self.papers) if p.id is not None}
        self._names: dict[str, int] = {}
        self._categories: dict[str, int] = {}
        for p, doc in enumerate(self.docs):
            for name in set().union(*doc.authors):
                self._names[name] = self._names.get(name, 0) | 1 << p
            for category in doc.categories:
                self._categories[category] = self._categories.get(category, 0) | 1 << p
        self._terms: dict[Term, Hits] = {}
        self._interests: dict[tuple[Term, ...], Hits] = {}
        self._single: dict[int, tuple[Hits, list[tuple[float, int, int]]]] = {}
        self._matches: dict[tuple[int, tuple[Interest, ...]], Match] = {}
        self._explained: dict[tuple[Term, int], tuple[str | None, tuple[Span, ...]]] = {}

    # -- terms and interests -------------------------------------------------------------

    def term(self, term: Term) -> Hits:
        """The papers one term matches, with its BM25F score in each (cached per batch)."""
        hits = self._terms.get(term)
        if hits is None:
            hits = self._terms[term] = self._evaluate(term)
        return hits

    def _evaluate(self, term: Term) -> Hits:
        """Look one term up in the inverted index."""
        if term.kind == ALL:
            return Hits(self._every, dict.fromkeys(range(self.size), 0.0))
        if term.kind in (AUTHOR, CATEGORY):
            bits = self._name_bits(term)
            score = name_score(idf(self.size, bits.bit_count()))
            return Hits(bits, dict.fromkeys(iter_bits(bits), score))
        in_title = self._title.counts(term.values)
        in_abstract = {} if term.field == TITLE else self._abstract.counts(term.values)
        papers = sorted(in_title.keys() | in_abstract.keys())
        term_idf = idf(self.size, len(papers))
        scores = {
            p: text_score(
                term_idf,
                in_title.get(p, 0),
                self._title_norm[p],
                in_abstract.get(p, 0),
                self._abstract_norm[p],
            )
            for p in papers
        }
        return Hits(sum(1 << p for p in papers), scores)

    def _name_bits(self, term: Term) -> int:
        """Papers with an author holding every name token, or in the category."""
        if term.kind == CATEGORY:
            return self._categories.get(term.values[0], 0)
        candidates = self._every
        for token in term.values:
            candidates &= self._names.get(token, 0)
        return sum(
            1 << p for p in iter_bits(candidates) if author_matches(self.docs[p], term) is not None
        )

    def interest(self, interest: Interest) -> Hits:
        """Papers matching every term of an interest, with the summed relevance (cached)."""
        hits = self._interests.get(interest.terms)
        if hits is None:
            if len(self._interests) >= _CACHE_LIMIT:
                self._interests.clear()
            hits = self._interests[interest.terms] = self._intersect(interest.terms)
        return hits

    def _intersect(self, terms: tuple[Term, ...]) -> Hits:
        """AND the terms' bitsets; score only the papers that survive."""
        all_hits = [self.term(t) for t in terms]
        bits = self._every
        for hits in all_hits:
            bits &= hits.bits
        scores: dict[int, float] = {}
        for p in iter_bits(bits):
            total = 0.0
            for hits in all_hits:
                total += hits.scores[p]
            scores[p] = total
        return Hits(bits, scores)

    def exclusion_bits(self, profile: Profile) -> int:
        """Papers any of the profile's exclusions hit."""
        bits = 0
        for term in profile.exclusions:
            bits |= self.term(term).bits
        return bits

    def id_bits(self, ids: Set[int]) -> int:
        """The bitset of papers whose id is in ``ids``."""
        if len(ids) <= self.size:
            found = (self._by_id.get(i) for i in ids)
            return sum(1 << p for p in found if p is not None)
        return sum(1 << p for i, p in self._by_id.items() if i in ids)

    # -- ranking -----------------------------------------------------------------------------

    def _ranked(self, hits: Hits) -> list[tuple[float, int, int]]:
        """A single interest's matches as (score, -tiebreak, paper), best first (cached)."""
        ranked = self._single.get(id(hits))
        if ranked is None or ranked[0] is not hits:
            if len(self._single) >= _CACHE_LIMIT:
                self._single.clear()
            items = [self._item(1, r, p) for p, r in hits.scores.items()]
            items.sort(reverse=True)
            ranked = self._single[id(hits)] = (hits, items)
        return ranked[1]

    def _item(self, count: int, relevance: float, p: int) -> tuple[float, int, int]:
        """The sortable (score, -tiebreak, paper) of one match."""
        return final_score(count, relevance + self._popularity[p]), -self._tiebreak[p], p

    def _blocked(self, profile: Profile, exclude: Set[int]) -> int:
        """Papers removed by the profile's exclusions or already sent."""
        blocked = self.exclusion_bits(profile)
        return blocked | self.id_bits(exclude) if exclude else blocked

    def scored(
        self, profile: Profile, exclude: Set[int] = frozenset(), limit: int | None = None
    ) -> tuple[int, list[tuple[float, int, int]]]:
        """The fast path: (how many match, best ``limit`` as (score, -tiebreak, paper))."""
        blocked = self._blocked(profile, exclude)
        if len(profile.interests) == 1:
            hits = self.interest(profile.interests[0])
            items = self._ranked(hits)
            if blocked & hits.bits:
                items = [item for item in items if not blocked >> item[2] & 1]
            return len(items), items if limit is None else items[:limit]
        relevance, counts, union = self._accumulate(profile)
        if blocked & union:
            for p in iter_bits(blocked & union):
                relevance.pop(p, None)
        items = [self._item(counts.get(p, 1), r, p) for p, r in relevance.items()]
        if limit is None or len(items) > 4 * limit:
            top = heapq.nlargest(len(items) if limit is None else limit, items)
        else:
            top = sorted(items, reverse=True)[:limit]
        return len(items), top

    def _accumulate(self, profile: Profile) -> tuple[dict[int, float], dict[int, int], int]:
        """Summed relevance per paper over matched interests (profile order), counts, union."""
        relevance: dict[int, float] = {}
        counts: dict[int, int] = {}
        union = 0
        for interest in profile.interests:
            hits = self.interest(interest)
            union |= hits.bits
            if not relevance:
                relevance = dict(hits.scores)
                continue
            for p, s in hits.scores.items():
                if p in relevance:
                    relevance[p] += s
                    counts[p] = counts.get(p, 1) + 1
                else:
                    relevance[p] = s
        return relevance, counts, union

    def explain(self, profile: Profile, score: float, p: int) -> Match:
        """The full Match (interests, surface words, spans) for one ranked paper (cached)."""
        interests = tuple(i for i in profile.interests if self.interest(i).bits >> p & 1)
        key = (p, interests)
        match = self._matches.get(key)
        if match is None:
            if len(self._matches) >= _CACHE_LIMIT:
                self._matches.clear()
            explained = [self._explain_term(t, p) for i in interests for t in i.terms]
            words, spans = combine(explained)
            texts = tuple(i.text for i in interests)
            match = self._matches[key] = Match(self.papers[p], score, texts, words, spans)
        return match

    def _explain_term(self, term: Term, p: int) -> tuple[str | None, tuple[Span, ...]]:
        """One term's surface word and spans in one paper (cached across subscribers)."""
        key = (term, p)
        found = self._explained.get(key)
        if found is None:
            if len(self._explained) >= _CACHE_LIMIT:
                self._explained.clear()
            found = self._explained[key] = explain_term(self.papers[p], self.docs[p], term)
        return found

    def match(self, profile: Profile, exclude: Set[int] = frozenset()) -> list[Match]:
        """Every matching paper, best first, each with why it matched."""
        return list(self.digest(profile, exclude).matches)

    def digest(
        self, profile: Profile, exclude: Set[int] = frozenset(), limit: int | None = None
    ) -> Ranked:
        """How many papers match, and the best ``limit`` of them explained."""
        total, top = self.scored(profile, exclude, limit)
        return Ranked(total, tuple(self.explain(profile, s, p) for s, _, p in top))

    def match_many(
        self, subscribers: Iterable[tuple[Profile, Set[int]]], limit: int | None = None
    ) -> Iterator[Ranked]:
        """Stream results for (profile, already-sent ids) pairs, explaining the top ``limit``."""
        for profile, exclude in subscribers:
            yield self.digest(profile, exclude, limit)
