"""The batch engine: papers tokenised once, an inverted index of term -> bitset of papers.

A subscriber's result is set algebra on Python ints used as bitsets (bit i = paper i). Every
distinct term, and every distinct interest, is evaluated once per batch and cached, so a million
subscribers cost a handful of integer operations each plus scoring of their own matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import dataclass

from mailer.matching.explain import Doc, analyze_paper, author_matches, explain
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


def iter_bits(bits: int) -> Iterator[int]:
    """Indices of the set bits, lowest first."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


class _Postings:
    """Per-field positions of each stem: stem -> {paper index: [token positions]}."""

    def __init__(self, fields: Sequence[tuple[str, ...]]) -> None:
        self.positions: dict[str, dict[int, list[int]]] = {}
        self.bits: dict[str, int] = {}
        for p, stems in enumerate(fields):
            for i, stem in enumerate(stems):
                self.positions.setdefault(stem, {}).setdefault(p, []).append(i)
        for stem, per_paper in self.positions.items():
            self.bits[stem] = sum(1 << p for p in per_paper)

    def counts(self, stems: tuple[str, ...]) -> dict[int, int]:
        """How often the phrase ``stems`` occurs in each paper that has it."""
        candidates = -1
        for stem in stems:
            candidates &= self.bits.get(stem, 0)
        if not candidates:
            return {}
        first = self.positions[stems[0]]
        if len(stems) == 1:
            return {p: len(first[p]) for p in iter_bits(candidates)}
        later = [self.positions[s] for s in stems[1:]]
        found: dict[int, int] = {}
        for p in iter_bits(candidates):
            sets = [set(positions[p]) for positions in later]
            n = sum(all(i + k + 1 in s for k, s in enumerate(sets)) for i in first[p])
            if n:
                found[p] = n
        return found


class PaperIndex:
    """A batch of papers, tokenised once, matched against any number of profiles."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers: tuple[Paper, ...] = tuple(papers)
        self.docs: tuple[Doc, ...] = tuple(analyze_paper(p) for p in self.papers)
        self.size = len(self.papers)
        self._every = (1 << self.size) - 1
        self._title = _Postings([d.title.stems for d in self.docs])
        self._abstract = _Postings([d.abstract.stems for d in self.docs])
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

    def rank(self, profile: Profile, exclude: Set[int] = frozenset()) -> list[tuple[float, int]]:
        """Every match as (score, paper index), best first: the fast path, no explanations."""
        blocked = self.exclusion_bits(profile)
        if exclude:
            blocked |= self.id_bits(exclude)
        relevance: dict[int, float] = {}
        count: dict[int, int] = {}
        for interest in profile.interests:
            hits = self.interest(interest)
            for p, s in hits.scores.items():
                if p in relevance:
                    relevance[p] += s
                    count[p] += 1
                elif not blocked >> p & 1:
                    relevance[p] = s
                    count[p] = 1
        pop = self._popularity
        tie = self._tiebreak
        scored = [(final_score(count[p], r + pop[p]), p) for p, r in relevance.items()]
        scored.sort(key=lambda item: (-item[0], tie[item[1]]))
        return scored

    def explain(self, profile: Profile, score: float, p: int) -> Match:
        """Build the full Match (interests, surface words, spans) for one ranked paper."""
        interests = [i for i in profile.interests if self.interest(i).bits >> p & 1]
        terms = [t for i in interests for t in i.terms]
        words, spans = explain(self.papers[p], self.docs[p], terms)
        return Match(self.papers[p], score, tuple(i.text for i in interests), words, spans)

    def match(self, profile: Profile, exclude: Set[int] = frozenset()) -> list[Match]:
        """Every matching paper, best first, each with why it matched."""
        return [self.explain(profile, s, p) for s, p in self.rank(profile, exclude)]

    def match_many(
        self, subscribers: Iterable[tuple[Profile, Set[int]]], limit: int | None = None
    ) -> Iterator[Ranked]:
        """Stream results for (profile, already-sent ids) pairs, explaining the top ``limit``."""
        for profile, exclude in subscribers:
            scored = self.rank(profile, exclude)
            shown = scored if limit is None else scored[:limit]
            yield Ranked(len(scored), tuple(self.explain(profile, s, p) for s, p in shown))
