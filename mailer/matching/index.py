"""Ranking and explaining on top of the batch index: what a subscriber's digest needs.

Per subscriber: look up each interest (cached per batch), then set algebra. Papers matching two
or more interests always outrank papers matching one (the score's integer part), so only those
few are scored here; the rest come pre-sorted per interest and are merged lazily until the
digest is full. The total is a popcount. Listed papers are explained from reasons cached per
term or interest and paper (reasons.py), shared by every subscriber who lists that paper.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Set

from mailer.matching.lookup import BatchIndex, Hits
from mailer.matching.postings import bit_list
from mailer.matching.profile import Interest, Profile, Term
from mailer.matching.reasons import Explainer, Reasons, Spans, Words, new_match, union
from mailer.models import Match, Paper

Item = tuple[float, int, int]  # (score, -tiebreak, paper index): sorts best-last


class Ranked:
    """One subscriber's outcome: how many papers matched and the best ``limit`` of them.

    Ranking is cheap; explaining (interests, words, spans) is not, so ``matches`` is built on
    first access: a planner that only needs counts and paper ids never pays for it.
    """

    __slots__ = ("_index", "_matches", "_multi", "_profile", "_slots", "top", "total")

    def __init__(
        self,
        index: PaperIndex,
        profile: Profile,
        total: int,
        top: list[Item],
        slots: list[_Slot] | None = None,
        multi: int = 0,
    ) -> None:
        self.total = total
        self.top = top
        self._index = index
        self._profile = profile
        self._slots = slots  # the profile's interest slots, in profile order, when known
        self._multi = multi  # how many of ``top`` (its head) matched several interests
        self._matches: tuple[Match, ...] | None = None

    @property
    def papers(self) -> tuple[Paper, ...]:
        """The listed papers, best first (no explanation needed)."""
        papers = self._index.papers
        return tuple([papers[p] for _, _, p in self.top])

    @property
    def matches(self) -> tuple[Match, ...]:
        """The listed papers as explained Matches, best first."""
        if self._matches is None:
            if self._slots is None:
                self._matches = self._index.explain_all(self._profile, self.top)
            else:
                self._matches = self._index._explain_ranked(
                    self._profile, self._slots, self._multi, self.top
                )
        return self._matches


class _Slot:
    """A cached interest or term found by object identity: its hits, its own ranking, its
    reasons per paper (shared with every equal interest or term) and, for an interest, the
    Match of each paper listed for it alone (its score depends on nothing else)."""

    __slots__ = ("hits", "key", "matches", "ranked", "reasons", "text")

    def __init__(self, key: object, hits: Hits, text: str | None = None) -> None:
        self.key = key  # held so its id() is not reused while the slot lives
        self.hits = hits
        self.ranked: tuple[Item, ...] | None = None
        self.reasons: Reasons | None = None  # an interest's, once one of its papers is listed
        # The interest's text as written: a Match names it, so cached Matches are only used
        # for an interest with this very text (interned profiles share the object).
        self.text = text
        self.matches: dict[int, Match] = {}


class PaperIndex(BatchIndex):
    """A batch of papers, tokenised once, matched against any number of profiles."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        super().__init__(papers)
        self._ranked: dict[object, tuple[Item, ...]] = {}
        self._explainer = Explainer(
            self.papers, self.docs, self._title, self._abstract, self._spend
        )
        # Compiled profiles share interned interests and terms (Profile.from_json), so most
        # look-ups hit by identity here and skip hashing nested tuples.
        self._slots: dict[int, _Slot] = {}

    def clear_caches(self) -> None:
        """Forget every cached lookup, ranking and explanation."""
        super().clear_caches()
        self._ranked.clear()
        self._explainer.clear()
        self._slots.clear()

    def _interest_slots(self, interests: Iterable[Interest]) -> list[_Slot]:
        """Each interest's slot, by identity first, else evaluated (or found by value)."""
        slots = self._slots
        found: list[_Slot] = []
        for interest in interests:
            terms = interest.terms
            slot = slots.get(id(terms))
            if slot is None or slot.key is not terms:
                slot = _Slot(terms, self.interest(interest), interest.text)
                self._spend(0)
                slots[id(terms)] = slot
            found.append(slot)
        return found

    def _term_bits(self, term: Term) -> int:
        """One term's bitset, by identity first."""
        slot = self._slots.get(id(term))
        if slot is None or slot.key is not term:
            slot = _Slot(term, self.term(term))
            self._spend(0)
            self._slots[id(term)] = slot
        return slot.hits.bits

    def _single(self, slot: _Slot) -> tuple[Item, ...]:
        """One interest's matches, best first, as if it were the only one matched (cached)."""
        ranked = slot.ranked
        if ranked is None:
            ranked = slot.ranked = self._ranked.get(slot.key)
        if ranked is None:
            pop, negtie = self._popularity, self._negtie
            items = slot.hits.scores.items()
            # final_score(1, relevance), inlined: one call per paper is a large share here.
            found = [(1 + (x := r + pop[p]) / (1.0 + x), negtie[p], p) for p, r in items]
            found.sort(reverse=True)
            # A tuple of tuples of numbers drops out of the garbage collector's view; a list
            # would be walked, item by item, by every full collection.
            ranked = tuple(found)
            self._spend(len(ranked))
            self._ranked[slot.key] = slot.ranked = ranked
        return ranked

    def _blocked(self, profile: Profile, exclude: Set[int]) -> int:
        """Papers removed by the profile's exclusions or already sent."""
        blocked = 0
        for term in profile.exclusions:
            blocked |= self._term_bits(term)
        return blocked | self.id_bits(exclude) if exclude else blocked

    def scored(
        self, profile: Profile, exclude: Set[int] = frozenset(), limit: int | None = None
    ) -> tuple[int, list[Item]]:
        """The fast path: how many papers match, and the best ``limit`` as (score, -tie, index)."""
        total, top, _, _ = self._rank(profile, exclude, limit)
        return total, top

    def _rank(
        self, profile: Profile, exclude: Set[int], limit: int | None
    ) -> tuple[int, list[Item], list[_Slot], int]:
        """``scored``, with the interests' slots and how many of the top matched several."""
        slots = self._interest_slots(profile.interests)
        seen = multi = 0
        for slot in slots:
            bits = slot.hits.bits
            multi |= seen & bits
            seen |= bits
        blocked = self._blocked(profile, exclude)
        live = seen & ~blocked
        multi &= live
        top = self._score_multi([s.hits for s in slots], multi, limit) if multi else []
        several = len(top)
        if live != multi and (limit is None or several < limit):
            need = None if limit is None else limit - several
            top += self._singles(slots, multi | blocked, need)
        return live.bit_count(), top, slots, several

    def _score_multi(self, hits: list[Hits], multi: int, limit: int | None) -> list[Item]:
        """Papers matching several interests, best first: layer by layer (most interests
        first), stopping once ``limit`` are ranked, since a layer always outranks the next."""
        used = [h for h in hits if h.bits & multi]
        gets = [h.scores.get for h in used]
        pop, negtie = self._popularity, self._negtie
        items: list[Item] = []
        for n, layer in _layers([h.bits & multi for h in used], multi):
            # Summed in profile order from 0.0, as the baseline sums: a missing interest adds
            # 0.0, which leaves the float unchanged. Two or three interests inline.
            if len(gets) == 2:
                a, b = gets
                ranked = [
                    (n + (r := 0.0 + a(p, 0.0) + b(p, 0.0) + pop[p]) / (1.0 + r), negtie[p], p)
                    for p in bit_list(layer)
                ]
            elif len(gets) == 3:
                a, b, c = gets
                ranked = [
                    (
                        n + (r := 0.0 + a(p, 0.0) + b(p, 0.0) + c(p, 0.0) + pop[p]) / (1.0 + r),
                        negtie[p],
                        p,
                    )
                    for p in bit_list(layer)
                ]
            else:
                ranked = []
                for p in bit_list(layer):
                    r = 0.0
                    for get in gets:
                        r += get(p, 0.0)
                    r += pop[p]
                    ranked.append((n + r / (1.0 + r), negtie[p], p))
            ranked.sort(reverse=True)
            items += ranked
            if limit is not None and len(items) >= limit:
                return items[:limit]
        return items

    def _singles(self, slots: list[_Slot], skip: int, need: int | None) -> list[Item]:
        """The best ``need`` papers matching exactly one interest (``skip``: multi or blocked)."""
        found: list[Item] = []
        for slot in slots:
            bits = slot.hits.bits
            if not bits & ~skip:
                continue
            ranked = self._single(slot)
            if not bits & skip:
                found += ranked if need is None else ranked[:need]
            elif need is None:
                found += [item for item in ranked if not skip >> item[2] & 1]
            else:
                found += _first_unskipped(ranked, skip, need)
        found.sort(reverse=True)
        return found if need is None else found[:need]

    def explain(self, profile: Profile, score: float, p: int) -> Match:
        """The full Match (interests, surface words, spans) for one ranked paper."""
        return self.explain_all(profile, [(score, 0, p)])[0]

    def explain_all(self, profile: Profile, top: Iterable[Item]) -> tuple[Match, ...]:
        """Explained Matches for ranked items, from each interest's reasons per paper (cached
        across subscribers: most listed papers match one interest, shared by many)."""
        explainer, papers = self._explainer, self.papers
        spans_of = explainer.spans
        interests: list[tuple[dict[int, float], tuple[str, ...], Reasons]] = []
        for interest, slot in zip(
            profile.interests, self._interest_slots(profile.interests), strict=True
        ):
            reasons = self._interest_reasons(interest, slot)
            interests.append((slot.hits.scores, (interest.text,), reasons))
        found: list[Match] = []
        for score, _, p in top:
            single = None  # the one interest matched, when only one is (most listed papers)
            for entry in interests:
                if p in entry[0]:
                    if single is not None:
                        single = None
                        break
                    single = entry
            if single is not None:
                _, texts, reasons = single
                spans = reasons.spans.get(p)
                if spans is None:
                    spans = spans_of(reasons, p)
                found.append(new_match(papers[p], score, texts, reasons.words[p], spans))
            else:
                matched = [r for scores, _, r in interests if p in scores]
                texts = tuple([t[0] for scores, t, _ in interests if p in scores])
                words, spans = union(explainer.parts(matched, p))
                found.append(new_match(papers[p], score, texts, words, spans))
        return tuple(found)

    def _explain_ranked(
        self, profile: Profile, slots: list[_Slot], several: int, top: list[Item]
    ) -> tuple[Match, ...]:
        """``explain_all`` for a ranking of ours, whose first ``several`` items matched several
        interests and the rest one. A paper listed for one interest has the same Match for
        every subscriber with that interest (its score depends on nothing else), so it is
        cached on the interest's slot: most listed papers are such (70 % in the bench), and
        most of those are found there (7 in 10 with every profile distinct)."""
        pairs = list(zip(profile.interests, slots, strict=True))
        found = self._explain_several(pairs, top[:several]) if several else []
        # Papers matching one interest: that interest's cached Match (or made and kept).
        singles = [(s.hits.scores, s.matches if s.text is i.text else None) for i, s in pairs]
        for score, _, p in top[several:]:
            cached = None
            for scores, cache in singles:
                if p in scores:
                    cached = cache
                    break
            match = cached.get(p) if cached is not None else None
            if match is None or match.score != score:
                interest, slot = next(pair for pair in pairs if p in pair[1].hits.scores)
                match = self._explain_one(interest, slot, score, p)
                if cached is not None:
                    cached[p] = match
                    self._spend(1)
            found.append(match)
        return tuple(found)

    def _interest_reasons(self, interest: Interest, slot: _Slot) -> Reasons:
        """The interest's reasons per paper, made the first time one of its papers is listed."""
        if slot.reasons is None:
            slot.reasons = self._explainer.of_interest(interest.terms)
        return slot.reasons

    def _explain_one(self, interest: Interest, slot: _Slot, score: float, p: int) -> Match:
        """The Match of paper ``p`` listed for matching one interest."""
        reasons = self._interest_reasons(interest, slot)
        spans = reasons.spans.get(p)
        if spans is None:
            spans = self._explainer.spans(reasons, p)
        return new_match(self.papers[p], score, (interest.text,), reasons.words[p], spans)

    def _explain_several(
        self, pairs: list[tuple[Interest, _Slot]], items: Sequence[Item]
    ) -> list[Match]:
        """Matches for papers listed for matching several interests: the union of those
        interests' reasons in each (``explain_all``'s rule, in one loop: a third of the listed
        papers, and nothing here is shared by other subscribers)."""
        explainer = self._explainer
        spans_of, papers = explainer.spans, self.papers
        entries = []
        for interest, slot in pairs:
            reasons = self._interest_reasons(interest, slot)
            terms = reasons.parts or (reasons,)
            entries.append((slot.hits.scores, interest.text, reasons.spans, reasons.words, terms))
        found: list[Match] = []
        for score, _, p in items:
            texts: list[str] = []
            groups: list[tuple[Spans, Words]] = []
            seen: set[Reasons] = set()  # terms already given (interests often share one)
            for scores, text, known, words, terms in entries:
                if p not in scores:
                    continue
                texts.append(text)
                spans = known.get(p)
                if spans is not None:  # the interest's own, if it was ever listed alone
                    groups.append((spans, words[p]))
                    continue
                for term in terms:
                    if term not in seen:
                        seen.add(term)
                        spans = term.spans.get(p)
                        if spans is None:
                            spans = spans_of(term, p)
                        groups.append((spans, term.words[p]))
            united_words, united_spans = union(groups)
            found.append(new_match(papers[p], score, tuple(texts), united_words, united_spans))
        return found

    def match(self, profile: Profile, exclude: Set[int] = frozenset()) -> list[Match]:
        """Every matching paper, best first, each with why it matched."""
        return list(self.digest(profile, exclude).matches)

    def digest(
        self, profile: Profile, exclude: Set[int] = frozenset(), limit: int | None = None
    ) -> Ranked:
        """How many papers match, and the best ``limit`` of them explained."""
        total, top, slots, several = self._rank(profile, exclude, limit)
        return Ranked(self, profile, total, top, slots, several)

    def match_many(
        self, subscribers: Iterable[tuple[Profile, Set[int]]], limit: int | None = None
    ) -> Iterator[Ranked]:
        """Stream results for (profile, already-sent ids) pairs, explaining the top ``limit``."""
        for profile, exclude in subscribers:
            yield self.digest(profile, exclude, limit)


def _layers(sets: list[int], multi: int) -> Iterator[tuple[int, int]]:
    """(n, papers in exactly n of ``sets``) for n from the most down to 2, within ``multi``.

    A bit-sliced counter: plane i holds bit i of each paper's count, so a layer is a few ANDs.
    """
    if len(sets) == 2:
        yield 2, multi
        return
    planes: list[int] = []
    for carry in sets:
        for i, plane in enumerate(planes):
            planes[i] = plane ^ carry
            carry &= plane
            if not carry:
                break
        if carry:
            planes.append(carry)
    left = multi
    # No paper's count needs more bits than there are planes.
    for n in range(min(len(sets), (1 << len(planes)) - 1), 1, -1):
        layer = left
        for i, plane in enumerate(planes):
            layer &= plane if n >> i & 1 else ~plane
        if layer:
            yield n, layer
            left &= ~layer
            if not left:
                return


def _first_unskipped(ranked: Sequence[Item], skip: int, need: int) -> list[Item]:
    """The first ``need`` items whose paper is not in ``skip`` (filtered a slice at a time)."""
    found: list[Item] = []
    start, step = 0, need + 8
    while len(found) < need and start < len(ranked):
        found += [item for item in ranked[start : start + step] if not skip >> item[2] & 1]
        start += step
        step *= 2
    return found[:need]
