"""A payload's items collected one at a time: a bad item is skipped with a reason, never fatal.

Every parser feeds its items through a :class:`Batch`, which builds each paper, bounds it
(:func:`mailer.sources.fields.bounded`), drops repeats and stops reading past the item cap, so
one hostile item (a huge number, a deep nesting, a NUL) costs that item and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from mailer.models import Paper
from mailer.sources import fields
from mailer.sources.base import DEFAULT_LIMITS, ParseResult

DEFAULT_MAX_ITEMS = DEFAULT_LIMITS.max_items
MAX_REASONS = 100  # reasons kept per fetch; further skips are only counted
MAX_REASON = 200  # characters per reason: a reason may quote what the source sent


class Batch:
    """Papers collected from a payload's items, with the reasons items were skipped."""

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        self.max_items = max_items
        self.reasons: list[str] = []
        self._papers: list[Paper] = []
        self._seen: set[str] = set()
        self._items = 0
        self._skipped = 0
        self._unread = 0

    @property
    def full(self) -> bool:
        """True once ``max_items`` items have been read: later ones are only counted."""
        return self._items >= self.max_items

    def add(self, label: str, build: Callable[[], Paper | None]) -> None:
        """Read one item: ``build()`` makes its paper (None leaves it out without a skip);
        any exception it raises skips the item with the exception's message as the reason."""
        if self.full:
            self._unread += 1
            return
        self._items += 1
        try:
            built = build()
            if built is None:
                return
            paper = fields.bounded(built)
        except RecursionError:
            self.skip(label, "nested too deeply")
            return
        except Exception as exc:  # one item's junk must never cost the rest of the batch
            self.skip(label, str(exc) if isinstance(exc, ValueError) else _described(exc))
            return
        if paper.key in self._seen:
            # A title hash names nothing a reader recognises: quote the title instead.
            repeat = paper.title[:60] if paper.key.startswith("title:") else None
            self.skip(
                label, f"duplicate title {repeat!r}" if repeat else f"duplicate of {paper.key}"
            )
            return
        self._seen.add(paper.key)
        self._papers.append(paper)

    def skip(self, label: str, reason: str) -> None:
        """Count a skipped item; its reason is kept among the first MAX_REASONS."""
        self._skipped += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append(fields.capped(f"{label}: {reason}", MAX_REASON))

    def result(self, reasons_before: tuple[str, ...] = ()) -> ParseResult:
        """The papers and skips; ``reasons_before`` are payload-level notes counted as skips."""
        reasons = list(reasons_before) + self.reasons
        if self._skipped > len(self.reasons):
            reasons.append(f"{self._skipped - len(self.reasons):,} more items skipped")
        if self._unread:
            reasons.append(
                f"{self._unread:,} items past the first {self.max_items:,} not read"
                " (MAILER_FETCH_MAX_ITEMS)"
            )
        total = len(reasons_before) + self._skipped + self._unread
        return ParseResult(tuple(self._papers), tuple(reasons), total - len(reasons))


def _described(exc: Exception) -> str:
    return fields.capped(f"unreadable ({type(exc).__name__}: {exc})", MAX_REASON)
