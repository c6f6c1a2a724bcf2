"""Ranking and explaining on top of the batch index: what a subscriber's digest needs.

Per subscriber: look up each interest (cached per batch), then set algebra. Papers matching two
or more interests always outrank papers matching one (the score's integer part), so only those
few are scored here; the rest come pre-sorted per interest and are merged lazily until the
digest is full. The total is a popcount.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence, Set

from mailer.matching.explain import combine, explain_term
from mailer.matching.lookup import BatchIndex, Hits
from mailer.matching.postings import iter_bits
from mailer.matching.profile import TEXT, TITLE, Interest, Profile, Term
from mailer.matching.scoring import final_score
from mailer.models import Match, Paper, Span

Item = tuple[float, int, int]  # (score, -tiebreak, paper index): sorts best-last


class Ranked:
    """One subscriber's outcome: how many papers matched and the best ``limit`` of them.

    Ranking is cheap; explaining (interests, words, spans) is not, so ``matches`` is built on
    first access: a planner that only needs counts and paper ids never pays for it.
    """

    __slots__ = ("_index", "_matches", "_profile", "top", "total")

    def __init__(self, index: PaperIndex, profile: Profile, total: int, top: list[Item]) -> None:
        self.total = total
        self.top = top
        self._index = index
        self._profile = profile
        self._matches: tuple[Match, ...] | None = None

    @property
    def papers(self) -> tuple[Paper, ...]:
        """The listed papers, best first (no explanation needed)."""
        return tuple(self._index.papers[p] for _, _, p in self.top)

    @property
    def matches(self) -> tuple[Match, ...]:
        """The listed papers as explained Matches, best first."""
        if self._matches is None:
            explain = self._index.explain
            self._matches = tuple(explain(self._profile, s, p) for s, _, p in self.top)
        return self._matches


class PaperIndex(BatchIndex):
    """A batch of papers, tokenised once, matched against any number of profiles."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        super().__init__(papers)
        self._ranked: dict[tuple[Term, ...], list[Item]] = {}
        self._explained: dict[tuple[Term, int], tuple[str | None, tuple[Span, ...]]] = {}

    def clear_caches(self) -> None:
        """Forget every cached lookup, ranking and explanation."""
        super().clear_caches()
        self._ranked.clear()
        self._explained.clear()

    def _single(self, interest: Interest, hits: Hits) -> list[Item]:
        """One interest's matches, best first, as if it were the only one matched (cached)."""
        ranked = self._ranked.get(interest.terms)
        if ranked is None:
            pop, tie = self._popularity, self._tiebreak
            ranked = [(final_score(1, r + pop[p]), -tie[p], p) for p, r in hits.scores.items()]
            ranked.sort(reverse=True)
            self._spend(len(ranked))
            self._ranked[interest.terms] = ranked
        return ranked

    def _blocked(self, profile: Profile, exclude: Set[int]) -> int:
        """Papers removed by the profile's exclusions or already sent."""
        blocked = self.exclusion_bits(profile)
        return blocked | self.id_bits(exclude) if exclude else blocked

    def scored(
        self, profile: Profile, exclude: Set[int] = frozenset(), limit: int | None = None
    ) -> tuple[int, list[Item]]:
        """The fast path: how many papers match, and the best ``limit`` as (score, -tie, index)."""
        hits = [self.interest(i) for i in profile.interests]
        seen = multi = 0
        for h in hits:
            multi |= seen & h.bits
            seen |= h.bits
        blocked = self._blocked(profile, exclude)
        live = seen & ~blocked
        total = live.bit_count()
        top = self._score(hits, multi & live)
        if limit is not None and len(top) >= limit:
            return total, top[:limit]
        skip = multi | blocked
        lists = [self._single(i, h) for i, h in zip(profile.interests, hits, strict=True) if h.bits]
        if not lists:
            return total, top
        merged = lists[0] if len(lists) == 1 else heapq.merge(*lists, reverse=True)
        for item in merged:
            if not skip >> item[2] & 1:
                top.append(item)
                if len(top) == limit:
                    break
        return total, top

    def _score(self, hits: list[Hits], papers: int) -> list[Item]:
        """Full scores of papers matching several interests (summed in profile order)."""
        tables = [h.scores for h in hits if h.bits & papers]
        pop, tie = self._popularity, self._tiebreak
        items: list[Item] = []
        for p in iter_bits(papers):
            found = [t[p] for t in tables if p in t]
            # sum() starts from 0, and 0 + x == x: the same floats as the baseline's 0.0 + x.
            items.append((final_score(len(found), sum(found) + pop[p]), -tie[p], p))
        items.sort(reverse=True)
        return items

    def explain(self, profile: Profile, score: float, p: int) -> Match:
        """The full Match (interests, surface words, spans) for one ranked paper."""
        interests = [i for i in profile.interests if self.interest(i).bits >> p & 1]
        words, spans = combine([self._explain_term(t, p) for i in interests for t in i.terms])
        return Match(self.papers[p], score, tuple(i.text for i in interests), words, spans)

    def _explain_term(self, term: Term, p: int) -> tuple[str | None, tuple[Span, ...]]:
        """One term's surface word and spans in one paper (cached across subscribers)."""
        key = (term, p)
        found = self._explained.get(key)
        if found is None:
            title = abstract = None
            if term.kind == TEXT:
                title = self._title.positions.get(term.values[0], {}).get(p, [])
                if term.field != TITLE:
                    abstract = self._abstract.positions.get(term.values[0], {}).get(p, [])
            found = explain_term(self.papers[p], self.docs[p], term, title, abstract)
            self._spend(len(found[1]))
            self._explained[key] = found
        return found

    def match(self, profile: Profile, exclude: Set[int] = frozenset()) -> list[Match]:
        """Every matching paper, best first, each with why it matched."""
        return list(self.digest(profile, exclude).matches)

    def digest(
        self, profile: Profile, exclude: Set[int] = frozenset(), limit: int | None = None
    ) -> Ranked:
        """How many papers match, and the best ``limit`` of them explained."""
        total, top = self.scored(profile, exclude, limit)
        return Ranked(self, profile, total, top)

    def match_many(
        self, subscribers: Iterable[tuple[Profile, Set[int]]], limit: int | None = None
    ) -> Iterator[Ranked]:
        """Stream results for (profile, already-sent ids) pairs, explaining the top ``limit``."""
        for profile, exclude in subscribers:
            yield self.digest(profile, exclude, limit)
