"""The compiled keyword profile: interests made of terms, global exclusions, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from mailer.errors import ProfileError

# Term kinds.
TEXT = "text"  # stemmed tokens in order (one token = a word) in the title or abstract
AUTHOR = "author"  # folded name tokens, all within one author's name
CATEGORY = "cat"  # a folded arXiv category, or an archive ("cs") when it has no dot
ALL = "all"  # every paper: the `*` interest

ANY_FIELD = "any"
TITLE = "title"

_KINDS = frozenset({TEXT, AUTHOR, CATEGORY, ALL})
_FIELDS = frozenset({ANY_FIELD, TITLE})
JSON_VERSION = 2  # 1: terms as [kind, field, [values]] lists


class Term(NamedTuple):
    """One condition on a paper; ``values`` are stems (text), name tokens or a category.

    A named tuple rather than a dataclass: terms are hashed millions of times as cache keys.
    """

    kind: str
    values: tuple[str, ...]
    field: str = ANY_FIELD


class Interest(NamedTuple):
    """All ``terms`` must match; ``text`` is the interest as written (whitespace normalised)."""

    text: str
    terms: tuple[Term, ...]

    @property
    def is_all(self) -> bool:
        """True for the `*` interest that matches every paper."""
        return any(term.kind == ALL for term in self.terms)


@dataclass(frozen=True, slots=True)
class Profile:
    """A parsed profile: a paper matches when it matches one interest and no exclusion."""

    interests: tuple[Interest, ...]
    exclusions: tuple[Term, ...] = ()

    def to_json(self) -> str:
        """The compiled form stored in the database, so profiles are not re-parsed every run.

        Version 2 is compact and quick to load: ``{"v": 2, "i": [[text, term...]...], "x":
        [term...]}`` with each term one string, ``"kind field value value"`` (values are single
        tokens, never containing a space).
        """
        return json.dumps(
            {
                "v": JSON_VERSION,
                "i": [[i.text, *map(_term_json, i.terms)] for i in self.interests],
                "x": [_term_json(t) for t in self.exclusions],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: str) -> Profile:
        """Load the compiled form; raises ProfileError if it is not one we wrote (or is older)."""
        try:
            raw = json.loads(data)
            if raw["v"] != JSON_VERSION:
                raise ValueError(f"version {raw['v']!r}")
            interests = tuple(map(_interest_from, raw["i"]))
            exclusions = tuple(map(_term_from, raw["x"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProfileError(f"stored compiled profile is unreadable: {exc}") from None
        if not interests:
            raise ProfileError("stored compiled profile has no interests")
        return cls(interests, exclusions)


# Loading a compiled profile runs once per subscriber per run; subscribers share most of their
# interests and words, so decoded interests and terms are interned here (bounded: cleared when
# full). Interning also makes later cache look-ups in the batch index hit the same objects.
_CACHE_SIZE = 200_000
_interests: dict[tuple[str, ...], Interest] = {}
_terms: dict[str, Term] = {}


def _term_json(term: Term) -> str:
    """A term as one compact string: kind, field and values separated by spaces."""
    if any(not v or " " in v for v in term.values):
        raise ProfileError(f"term values cannot be stored: {term.values!r}")
    return " ".join((term.kind, term.field, *term.values))


def _interest_from(raw: Any) -> Interest:
    """An interest from its JSON list ``[text, term...]`` (interned)."""
    key = tuple(raw)
    found = _interests.get(key)
    if found is None:
        text = key[0]
        if type(text) is not str or len(key) < 2:
            raise ValueError(f"bad interest {raw!r}")
        found = Interest(text, tuple(map(_term_from, key[1:])))
        if len(_interests) >= _CACHE_SIZE:
            _interests.clear()
        _interests[key] = found
    return found


def _term_from(raw: Any) -> Term:
    """A term from its JSON string, validated once and interned."""
    found = _terms.get(raw)
    if found is None:
        kind, field, *values = raw.split(" ")
        if kind not in _KINDS or field not in _FIELDS or not all(values):
            raise ValueError(f"bad term {raw!r}")
        if not values and kind != ALL:
            raise ValueError(f"empty term {raw!r}")
        found = Term(kind, tuple(values), field)
        if len(_terms) >= _CACHE_SIZE:
            _terms.clear()
        _terms[raw] = found
    return found
