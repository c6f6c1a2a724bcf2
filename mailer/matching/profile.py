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
JSON_VERSION = 1


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
        """The compiled form stored in the database, so profiles are not re-parsed every run."""
        return json.dumps(
            {
                "v": JSON_VERSION,
                "interests": [
                    {"text": i.text, "terms": [_term_json(t) for t in i.terms]}
                    for i in self.interests
                ],
                "exclusions": [_term_json(t) for t in self.exclusions],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, data: str) -> Profile:
        """Load the compiled form; raises ProfileError if it is not one we wrote."""
        try:
            raw = json.loads(data)
            if raw["v"] != JSON_VERSION:
                raise ValueError(f"version {raw['v']!r}")
            interests = tuple(
                Interest(str(i["text"]), tuple(_term_from(t) for t in i["terms"]))
                for i in raw["interests"]
            )
            exclusions = tuple(_term_from(t) for t in raw["exclusions"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProfileError(f"stored compiled profile is unreadable: {exc}") from None
        if not interests:
            raise ProfileError("stored compiled profile has no interests")
        return cls(interests, exclusions)


def _term_json(term: Term) -> list[Any]:
    """A term as a compact JSON list."""
    return [term.kind, term.field, list(term.values)]


def _term_from(raw: Any) -> Term:
    """A term from its JSON list, validated (cheaply: this runs once per term per subscriber)."""
    kind, field, values = raw
    if kind not in _KINDS or field not in _FIELDS or type(values) is not list:
        raise ValueError(f"bad term {raw!r}")
    if not values and kind != ALL:
        raise ValueError(f"empty term {raw!r}")
    return Term(kind, tuple(values), field)
