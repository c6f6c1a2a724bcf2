"""Checking a phrase or an author name on a paper's text, for the whole-store index.

The index finds the papers holding every word of a phrase; whether the words stand in order
(or every token of a name sits in one author's name) is decided on the text. Plain text (ASCII
without markup) is searched with a regular expression over the word forms seen while indexing
each stem, which needs no stemming of the text; other text is analysed as the batch matcher
analyses it. Both give exactly the batch matcher's answer (property-tested).
"""

from __future__ import annotations

import re
from typing import Protocol

from mailer.matching.explain import occurrences
from mailer.matching.profile import AUTHOR, TITLE, Term
from mailer.matching.text import (
    Field,
    analyze,
    field_stems,
    is_plain,
    name_tokens,
    plain_words,
    stems_of,
)

_NEVER = re.compile(r"(?!)")


class PaperText(Protocol):
    """What checking a phrase or a name needs of one paper."""

    @property
    def title(self) -> str: ...
    @property
    def abstract(self) -> str: ...
    @property
    def authors(self) -> tuple[str, ...]: ...


class TextChecker:
    """Word forms by stem, and the phrase patterns made of them."""

    def __init__(self) -> None:
        # Every word of plain text seen, by stem: a phrase becomes a regular expression over
        # those words, checked on a paper's text without stemming it all.
        self._words: set[str] = set()
        self._forms: dict[str, set[str]] = {}
        self._patterns: dict[Term, re.Pattern[str] | None] = {}

    def stems(self, text: str) -> tuple[str, ...]:
        """A field's stems; the words of plain text are noted under their stem."""
        words = plain_words(text)
        if words is None:
            return analyze(text).stems
        stems = stems_of(words)
        new = set(words) - self._words
        if new:
            self._words |= new
            for word in new:
                self._forms.setdefault(stems_of((word,))[0], set()).add(word)
        return stems

    def check(self, term: Term, text: PaperText) -> tuple[int, int]:
        """A phrase's occurrences in title and abstract, or whether one author holds every
        name token ((1, 0) or (0, 0))."""
        if term.kind == AUTHOR:
            wanted = frozenset(term.values)
            found = any(wanted <= frozenset(name_tokens(a)) for a in text.authors)
            return (1, 0) if found else (0, 0)
        in_title = self._phrase_count(term, text.title)
        if term.field == TITLE:
            return in_title, 0
        return in_title, self._phrase_count(term, text.abstract)

    def _phrase_count(self, term: Term, text: str) -> int:
        """Occurrences of a phrase in one field: by regular expression in plain text (every word
        of it was seen while indexing), by its stems otherwise."""
        pattern = self._pattern(term)
        if pattern is None or not is_plain(text):
            return _count(field_stems(text), term.values)
        low = text.lower()
        # The pattern starts with the first word's literal prefix (which the regex engine finds
        # fast) and does not look behind: a match must start a word, checked here.
        return sum(
            1 for m in pattern.finditer(low) if m.start() == 0 or not low[m.start() - 1].isalnum()
        )

    def _pattern(self, term: Term) -> re.Pattern[str] | None:
        """The phrase as a regular expression over the words known to have its stems, separated
        by anything that is not a word, the last one ending a word (None: a self-overlapping
        phrase, checked by stems)."""
        if term not in self._patterns:
            pattern = None
            if not _overlaps_itself(term.values):
                forms = [self._forms.get(stem) for stem in term.values]
                if all(forms):
                    body = r"[\W_]+".join(_alternatives(f or set()) for f in forms)
                    pattern = re.compile(rf"{body}(?![^\W_])")
                else:  # a stem no plain text ever had: no plain text holds the phrase
                    pattern = _NEVER
            if len(self._patterns) > 1000:
                self._patterns.clear()
            self._patterns[term] = pattern
        return self._patterns[term]


def _count(stems: tuple[str, ...], phrase: tuple[str, ...]) -> int:
    """Occurrences of ``phrase`` in ``stems``: a substring count (stems hold no spaces), unless
    the phrase can overlap itself ("a a" is twice in "a a a"), which needs positions."""
    if _overlaps_itself(phrase):
        return len(occurrences(Field((), stems, (), ()), phrase))
    return f" {' '.join(stems)} ".count(f" {' '.join(phrase)} ")


def _alternatives(words: set[str]) -> str:
    """Words as one regular expression, their common prefix first: ``model(?:s|ling|)``."""
    first, last = min(words), max(words)  # the common prefix of all is theirs
    pairs = zip(first, last, strict=False)  # min is a prefix of max, or they differ early
    size = next((i for i, (a, b) in enumerate(pairs) if a != b), len(first))
    prefix = first[:size]
    rests = sorted((w[len(prefix) :] for w in words), key=lambda r: (-len(r), r))
    return re.escape(prefix) + "(?:" + "|".join(map(re.escape, rests)) + ")"


def _overlaps_itself(phrase: tuple[str, ...]) -> bool:
    return any(phrase[:k] == phrase[-k:] for k in range(1, len(phrase)))
