"""A reader's examples: votes on papers and entries seeded from their library."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Vote(IntEnum):
    """What the reader said about a paper; stored as the integer."""

    MORE = 1
    LESS = -1

    @property
    def label(self) -> str:
        """The words the reader clicked: "more like this" or "less like this"."""
        return "more like this" if self is Vote.MORE else "less like this"

    @property
    def word(self) -> str:
        """The short form used in tokens and URLs: "more" or "less"."""
        return "more" if self is Vote.MORE else "less"

    @classmethod
    def from_word(cls, word: str) -> Vote:
        """``more`` or ``less``; ValueError otherwise."""
        found = {"more": cls.MORE, "less": cls.LESS}.get(word)
        if found is None:
            raise ValueError(f"not a vote: {word!r}")
        return found


@dataclass(frozen=True, slots=True)
class Example:
    """One example the model learns from: its text, the vote, and how to name it."""

    vote: Vote
    title: str
    text: str  # title and abstract, as ``paper_text`` joins them
    paper_id: int | None = None  # set when the example is a stored paper
