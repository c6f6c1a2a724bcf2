"""The batch index: papers tokenised once, an inverted index of term -> bitset of papers.

Bitsets are Python ints (bit i = paper i). Every distinct term, and every distinct interest, is
evaluated once per batch and cached; the caches are bounded by the number of per-paper entries
they hold, so memory stays flat however many subscribers stream through.
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import dataclass

from mailer.matching.explain import Doc, analyze_paper, author_matches
from mailer.matching.postings import Postings, bit_list, iter_bits
from mailer.matching.profile import ALL, AUTHOR, CATEGORY, TITLE, Interest, Profile, Term
from mailer.matching.scoring import idf, length_norms, name_score, popularity, text_scores
from mailer.models import Paper

# Per-paper entries the caches may hold (about 100 bytes each) before they are dropped.
CACHE_ENTRIES = 3_000_000


@dataclass(frozen=True, slots=True)
class Hits:
    """The papers a term or interest matches (a bitset) and its relevance in each of them."""

    bits: int
    scores: dict[int, float]


EMPTY = Hits(0, {})


class BatchIndex:
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
        self._negtie = [-rank for rank in self._tiebreak]
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
        self._entries = 0
        self.cache_clears = 0

    def _spend(self, entries: int) -> None:
        """Account for cached entries; drop every cache when over budget (a rare event)."""
        self._entries += entries + 1
        if self._entries > CACHE_ENTRIES:
            self._entries = 0
            self.cache_clears += 1
            self.clear_caches()

    def clear_caches(self) -> None:
        """Forget every cached term and interest (results stay identical, only slower)."""
        self._terms.clear()
        self._interests.clear()

    # -- terms and interests -------------------------------------------------------------

    def term(self, term: Term) -> Hits:
        """The papers one term matches, with its BM25F score in each (cached per batch)."""
        hits = self._terms.get(term)
        if hits is None:
            hits = self._evaluate(term)
            self._spend(len(hits.scores))
            self._terms[term] = hits
        return hits

    def _evaluate(self, term: Term) -> Hits:
        """Look one term up in the inverted index."""
        if term.kind == ALL:
            return Hits(self._every, dict.fromkeys(range(self.size), 0.0))
        if term.kind in (AUTHOR, CATEGORY):
            bits = self._name_bits(term)
            score = name_score(idf(self.size, bits.bit_count()))
            return Hits(bits, dict.fromkeys(iter_bits(bits), score))
        stems = term.values
        in_title = self._title.counts(stems)
        in_abstract = {} if term.field == TITLE else self._abstract.counts(stems)
        papers = in_title.keys() | in_abstract.keys()
        scores = text_scores(
            idf(self.size, len(papers)),
            papers,
            in_title,
            self._title_norm,
            in_abstract,
            self._abstract_norm,
        )
        if len(stems) == 1:  # the word's papers, as the postings know them
            bits = self._title.bits.get(stems[0], 0)
            if term.field != TITLE:
                bits |= self._abstract.bits.get(stems[0], 0)
        else:
            bits = sum(1 << p for p in papers)
        return Hits(bits, scores)

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
            hits = self._intersect(interest.terms)
            self._spend(len(hits.scores))
            self._interests[interest.terms] = hits
        return hits

    def _intersect(self, terms: tuple[Term, ...]) -> Hits:
        """AND the terms' bitsets; score only the papers that survive."""
        if len(terms) == 1:
            return self.term(terms[0])
        all_hits = [self.term(t) for t in terms]
        bits = self._every
        for hits in all_hits:
            bits &= hits.bits
        if not bits:
            return EMPTY
        # Summed from 0.0 in term order, as the baseline sums.
        found = [h.scores for h in all_hits]
        if len(found) == 2:
            a, b = found
            return Hits(bits, {p: 0.0 + a[p] + b[p] for p in a.keys() & b.keys()})
        scores: dict[int, float] = {}
        for p in bit_list(bits):
            total = 0.0
            for each in found:
                total += each[p]
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
