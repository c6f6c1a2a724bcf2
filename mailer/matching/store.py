"""The whole paper store as a search index: compact postings, the profile language, BM25F.

The batch index (``lookup.BatchIndex``) keeps every token's position: right for a day's batch,
far too big for a year of papers (about 70 MB per thousand). This index keeps, per text field,
stem -> the papers holding it (an int array) and how often (a byte array), name token -> papers
and category -> papers, and per paper its id, recency and field lengths: about 5 bytes per
distinct word of a paper, plus the vocabulary (bench/web.py measures it).

From postings alone a single word, a category, ``*`` and a one-word author are exact. A phrase
(several stems in order) and an author of several name tokens (all within one author's name)
are only candidates there; they are checked on the paper's text, which the caller loads
(``Texts``) and checked by ``textcheck``, so the outcome is exactly what the batch matcher
would decide.

Papers live in slots, in the order they were added. A paper whose text changes gets a new slot
and its old one is marked dead; ``dead_share`` tells the owner when to rebuild.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from enum import StrEnum
from typing import Protocol

from mailer.matching.profile import ALL, AUTHOR, CATEGORY, TEXT, TITLE, Profile, Term
from mailer.matching.scoring import B, idf, name_score, popularity, text_score
from mailer.matching.text import fold, name_tokens
from mailer.matching.textcheck import PaperText, TextChecker

TF_MAX = 255  # counts are kept in a byte: BM25 saturates long before
CHECK_CHUNK = 500  # papers whose text is loaded at once for checking phrases and names
CHECK_CACHE = 2_000_000  # checked (term, paper) pairs kept between searches


class Order(StrEnum):
    """How search results are sorted."""

    NEWEST = "newest"  # day, then upvotes, then the newest id
    RELEVANCE = "relevance"  # the digest's ranking: interests matched, BM25F, popularity


class SearchDoc(Protocol):
    """What the index needs of one paper (the database layer's rows have this shape)."""

    @property
    def id(self) -> int: ...
    @property
    def day(self) -> date: ...
    @property
    def upvotes(self) -> int | None: ...
    @property
    def title(self) -> str: ...
    @property
    def abstract(self) -> str: ...
    @property
    def authors(self) -> tuple[str, ...]: ...
    @property
    def categories(self) -> tuple[str, ...]: ...


Texts = Callable[[Sequence[int]], Mapping[int, PaperText]]
"""Loads the texts of papers by id (missing ids are papers no longer stored)."""


def categories_of(categories: Iterable[str]) -> frozenset[str]:
    """Folded categories and their archives, as the batch matcher indexes them."""
    folded = {fold(c.strip()) for c in categories}
    return frozenset(folded | {c.split(".", 1)[0] for c in folded})


def _add_names(table: dict[str, array[int]], slot: int, tokens: Iterable[str]) -> None:
    for token in tokens:
        found = table.get(token)
        if found is None:
            found = table[token] = array("I")
        found.append(slot)


class StoreIndex:
    """Postings over every stored paper; ``search`` runs a profile over them."""

    def __init__(self) -> None:
        # stem -> (slots holding it, ascending; its count in each): sets are built from the
        # slot array in C, which is most of a search's work on common words.
        self._title: dict[str, tuple[array[int], bytearray]] = {}
        self._abstract: dict[str, tuple[array[int], bytearray]] = {}
        self._names: dict[str, array[int]] = {}
        self._categories: dict[str, array[int]] = {}
        self.ids = array("q")
        self.upvotes = array("i")  # -1: unknown
        # (day, upvotes, id) packed in one int per slot: sorting by it is one C-level call.
        self._recency: list[int] = []
        self._title_len = array("I")
        self._abstract_len = array("I")
        self._fingerprint = array("q")
        self._dead: set[int] = set()
        self._slot_of: dict[int, int] = {}
        self._length_sums = [0, 0]
        # Checked phrases and names per term: the slots checked, and where they hold, their
        # (title, abstract) counts. A slot's text never changes (a new text gets a new slot).
        self._checked: dict[Term, set[int]] = {}
        self._counts: dict[Term, dict[int, tuple[int, int]]] = {}
        self._check_entries = 0
        self._text = TextChecker()

    @property
    def live(self) -> int:
        """Papers indexed (their current text)."""
        return len(self.ids) - len(self._dead)

    @property
    def dead_share(self) -> float:
        """The share of slots held by replaced papers (rebuild when it grows large)."""
        return len(self._dead) / len(self.ids) if self.ids else 0.0

    def add(self, docs: Iterable[SearchDoc]) -> None:
        """Index papers; a known one is updated in place, or re-indexed if its text changed."""
        for doc in docs:
            fingerprint = hash((doc.title, doc.abstract, doc.authors, doc.categories))
            slot = self._slot_of.get(doc.id)
            if slot is not None and self._fingerprint[slot] == fingerprint:
                self.upvotes[slot] = -1 if doc.upvotes is None else doc.upvotes
                self._recency[slot] = _recency(doc)
                continue
            if slot is not None:
                self._dead.add(slot)
                self._length_sums[0] -= self._title_len[slot]
                self._length_sums[1] -= self._abstract_len[slot]
            self._append(doc, fingerprint)

    def _append(self, doc: SearchDoc, fingerprint: int) -> None:
        slot = len(self.ids)
        title, abstract = self._text.stems(doc.title), self._text.stems(doc.abstract)
        # Inlined: one posting per distinct word of a paper is most of building the index.
        for table, counts in ((self._title, Counter(title)), (self._abstract, Counter(abstract))):
            get = table.get
            for stem, count in counts.items():
                found = get(stem)
                if found is None:
                    found = table[stem] = (array("I"), bytearray())
                found[0].append(slot)
                found[1].append(count if count < TF_MAX else TF_MAX)
        _add_names(self._names, slot, {t for a in doc.authors for t in name_tokens(a)})
        _add_names(self._categories, slot, categories_of(doc.categories))
        self.ids.append(doc.id)
        self.upvotes.append(-1 if doc.upvotes is None else doc.upvotes)
        self._recency.append(_recency(doc))
        self._title_len.append(len(title))
        self._abstract_len.append(len(abstract))
        self._fingerprint.append(fingerprint)
        self._slot_of[doc.id] = slot
        self._length_sums[0] += len(title)
        self._length_sums[1] += len(abstract)

    # -- candidates --------------------------------------------------------------------------

    @staticmethod
    def _slots(table: dict[str, array[int]], token: str) -> set[int]:
        found = table.get(token)
        return set() if found is None else set(found)

    @staticmethod
    def _field_slots(
        stems: Sequence[str], table: dict[str, tuple[array[int], bytearray]]
    ) -> set[int]:
        """Slots holding every stem in one field (intersected smallest first)."""
        postings = []
        for stem in set(stems):
            found = table.get(stem)
            if found is None:
                return set()
            postings.append(found[0])
        postings.sort(key=len)
        result = set(postings[0])
        for slots in postings[1:]:
            result.intersection_update(slots)
            if not result:
                break
        return result

    def term_slots(self, term: Term) -> tuple[set[int], bool]:
        """The live slots a term may match, and whether that is exact (else check the text)."""
        if term.kind == ALL:
            return set(range(len(self.ids))) - self._dead, True
        if term.kind == CATEGORY:
            found = self._slots(self._categories, term.values[0])
            return found - self._dead, True
        if term.kind == AUTHOR:
            result = self._slots(self._names, term.values[0])
            for token in term.values[1:]:
                result.intersection_update(self._names.get(token, ()))
            return result - self._dead, len(term.values) == 1
        slots = self._field_slots(term.values, self._title)
        if term.field != TITLE:
            slots |= self._field_slots(term.values, self._abstract)
        return slots - self._dead, len(term.values) == 1

    # -- checks on text ----------------------------------------------------------------------

    def checked(self, term: Term, slot: int) -> tuple[int, int]:
        """A checked phrase's (title, abstract) counts, or a name's (1, 0), in a slot; (0, 0)
        when it does not hold there (or was not checked)."""
        return self._counts.get(term, {}).get(slot, (0, 0))

    def holding(self, term: Term, slots: set[int]) -> set[int]:
        """Those of ``slots`` (all checked) where a phrase or name term holds."""
        return slots & self._counts.get(term, {}).keys()

    def check(self, term: Term, slots: Iterable[int], texts: Texts) -> None:
        """Check a phrase or name term in the slots not checked yet, loading their texts."""
        done = self._checked.setdefault(term, set())
        counts = self._counts.setdefault(term, {})
        wanted = sorted(set(slots) - done)
        ids = self.ids
        for start in range(0, len(wanted), CHECK_CHUNK):
            chunk = wanted[start : start + CHECK_CHUNK]
            loaded = texts([ids[s] for s in chunk])
            for slot in chunk:
                text = loaded.get(ids[slot])
                found = (0, 0) if text is None else self._text.check(term, text)
                if found != (0, 0):
                    counts[slot] = found
            done.update(chunk)
        self._check_entries += len(wanted)
        if self._check_entries > CHECK_CACHE:  # bounded; dropping it only costs time
            self._checked, self._counts = {term: done}, {term: counts}
            self._check_entries = len(done)

    # -- search ------------------------------------------------------------------------------

    def search(self, profile: Profile, texts: Texts, order: Order = Order.NEWEST) -> list[int]:
        """Ids of every stored paper the profile matches, sorted by ``order``."""
        run = _Run(self, profile, texts)
        matched = run.matched()
        if order == Order.RELEVANCE:
            scores = run.scores(matched)
            recency = self._recency
            ranked = sorted(matched, key=lambda s: (scores[s], recency[s]), reverse=True)
        else:
            ranked = sorted(matched, key=self._recency.__getitem__, reverse=True)
        ids = self.ids
        return [ids[s] for s in ranked]

    def relevance(self, profile: Profile, texts: Texts) -> dict[int, float]:
        """Each matching paper's score by id, as ``Order.RELEVANCE`` sorts them."""
        run = _Run(self, profile, texts)
        return {self.ids[slot]: score for slot, score in run.scores(run.matched()).items()}

    # -- what scoring needs ------------------------------------------------------------------

    def counts(self, field: str, stem: str, slots: set[int]) -> dict[int, int]:
        """How often ``stem`` occurs in ``field`` of each of ``slots`` that has it."""
        table = self._title if field == TITLE else self._abstract
        found = table.get(stem)
        if found is None:
            return {}
        return {slot: count for slot, count in zip(*found, strict=True) if slot in slots}

    def norms(self, slot: int) -> tuple[float, float]:
        """BM25 length normalisation of a slot's title and abstract."""
        live = max(self.live, 1)
        title_avg, abstract_avg = self._length_sums[0] / live, self._length_sums[1] / live
        return (
            1.0 if title_avg == 0 else 1.0 - B + B * self._title_len[slot] / title_avg,
            1.0 if abstract_avg == 0 else 1.0 - B + B * self._abstract_len[slot] / abstract_avg,
        )


def _recency(doc: SearchDoc) -> int:
    upvotes = min(max(doc.upvotes or 0, 0), (1 << 20) - 1)
    return (doc.day.toordinal() << 84) | (upvotes << 64) | doc.id


class _Run:
    """One search: candidates from the postings, checks on text where needed, then scores."""

    def __init__(self, index: StoreIndex, profile: Profile, texts: Texts) -> None:
        self.index = index
        self.profile = profile
        self.texts = texts
        self.terms: dict[Term, set[int]] = {}
        self.inexact: set[Term] = set()
        self.interests: list[set[int]] = []

    def _term(self, term: Term) -> set[int]:
        found = self.terms.get(term)
        if found is None:
            found, exact = self.index.term_slots(term)
            self.terms[term] = found
            if not exact:
                self.inexact.add(term)
        return found

    def _holds(self, term: Term, slot: int) -> bool:
        if term not in self.inexact:
            return slot in self.terms[term]
        return self.index.checked(term, slot) != (0, 0)

    def _check(self, term: Term, slots: set[int]) -> None:
        if term in self.inexact and slots:
            self.index.check(term, slots & self.terms[term], self.texts)

    def _holding(self, term: Term, slots: set[int]) -> set[int]:
        """Those of ``slots`` where the term holds, checking its text where needed."""
        if term not in self.inexact:
            return slots & self.terms[term]
        self._check(term, slots)
        return self.index.holding(term, slots & self.terms[term])

    def matched(self) -> set[int]:
        """The slots the profile matches."""
        sure: set[int] = set()
        unsure: list[tuple[int, set[int]]] = []
        for i, interest in enumerate(self.profile.interests):
            slots: set[int] | None = None
            for term in sorted(interest.terms, key=lambda t: len(self._term(t))):
                slots = set(self._term(term)) if slots is None else slots & self._term(term)
            self.interests.append(slots or set())
            if any(t in self.inexact for t in interest.terms):
                unsure.append((i, slots or set()))
            else:
                sure |= slots or set()
        for i, slots in unsure:
            held = slots - sure
            for term in self.profile.interests[i].terms:
                held = self._holding(term, held)
            sure |= held
        for term in self.profile.exclusions:
            sure -= self._holding(term, self._term(term) & sure)
        return sure

    # -- relevance ---------------------------------------------------------------------------

    def scores(self, matched: set[int]) -> dict[int, float]:
        """The digest's score per slot: interests matched + relevance squashed into [0, 1)."""
        for interest, slots in zip(self.profile.interests, self.interests, strict=True):
            for term in interest.terms:
                self._check(term, slots & matched)  # for its counts, and which interests hold
        term_scores = {
            term: self._term_scores(term, matched)
            for interest in self.profile.interests
            for term in interest.terms
        }
        upvotes = self.index.upvotes
        out: dict[int, float] = {}
        for slot in matched:
            hits = [
                interest
                for interest, slots in zip(self.profile.interests, self.interests, strict=True)
                if slot in slots and all(self._holds(t, slot) for t in interest.terms)
            ]
            relevance = 0.0
            for interest in hits:
                for term in interest.terms:
                    relevance += term_scores[term].get(slot, 0.0)
            relevance += popularity(max(upvotes[slot], 0))
            out[slot] = len(hits) + relevance / (1.0 + relevance)
        return out

    def _term_scores(self, term: Term, slots: set[int]) -> dict[int, float]:
        """One term's BM25F contribution in each matched slot (store-wide idf)."""
        if term.kind == ALL:
            return {}
        size = max(self.index.live, 1)
        # A phrase's or a name's paper count is estimated by its candidates (an upper bound).
        term_idf = idf(size, len(self.terms[term]))
        if term.kind != TEXT:
            return dict.fromkeys(slots & self.terms[term], name_score(term_idf))
        counts = self._text_counts(term, slots)
        norms = self.index.norms
        scores = {}
        for slot, (tf_title, tf_abstract) in counts.items():
            title_norm, abstract_norm = norms(slot)
            scores[slot] = text_score(term_idf, tf_title, title_norm, tf_abstract, abstract_norm)
        return scores

    def _text_counts(self, term: Term, slots: set[int]) -> dict[int, tuple[int, int]]:
        if term in self.inexact:
            return {s: self.index.checked(term, s) for s in self.index.holding(term, slots)}
        stem = term.values[0]
        in_title = self.index.counts(TITLE, stem, slots)
        in_abstract = {} if term.field == TITLE else self.index.counts("abstract", stem, slots)
        return {
            s: (in_title.get(s, 0), in_abstract.get(s, 0))
            for s in in_title.keys() | in_abstract.keys()
        }
