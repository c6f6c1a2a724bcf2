"""The shapes every source shares: validators, parse and fetch results, the Source protocol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

import httpx

from mailer.models import Paper


@dataclass(frozen=True, slots=True)
class Validators:
    """Conditional-GET validators kept in ``source_state`` between fetches."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """What one fetch of one source may make us hold (``MAILER_FETCH_MAX_BYTES``, ``_ITEMS``)."""

    max_bytes: int = 16 * 1024 * 1024  # a response body after decompression, or a file
    max_items: int = 5_000  # items read; later ones are counted as skipped, not read


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a pure parser found: the papers, and a short reason per skipped item (the first
    hundred; the rest are counted)."""

    papers: tuple[Paper, ...]
    skip_reasons: tuple[str, ...] = ()
    more_skipped: int = 0  # skipped items without a reason of their own (past the kept ones)

    @property
    def skipped(self) -> int:
        """How many items were skipped."""
        return len(self.skip_reasons) + self.more_skipped


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one fetch of one source (for one announcement day, when it has days)."""

    papers: tuple[Paper, ...] = ()
    skipped: int = 0
    skip_reasons: tuple[str, ...] = ()
    not_modified: bool = False
    validators: Validators = field(default_factory=Validators)
    day: date | None = None

    @classmethod
    def from_parse(
        cls, parsed: ParseResult, validators: Validators, day: date | None
    ) -> FetchResult:
        """A fetch result carrying a parse result's papers and skips."""
        return cls(
            papers=parsed.papers,
            skipped=parsed.skipped,
            skip_reasons=parsed.skip_reasons,
            validators=validators,
            day=day,
        )


@runtime_checkable
class Source(Protocol):
    """A configured source: a stable name and an async fetch with injected HTTP client."""

    @property
    def name(self) -> str:
        """The stable identity used as the ``source_state`` / ``fetch_run`` key."""
        ...

    @property
    def kind(self) -> str:
        """The source kind: ``hf-daily``, ``arxiv``, ``rss`` or ``file``."""
        ...

    async def fetch(
        self, client: httpx.AsyncClient, validators: Validators, day: date
    ) -> FetchResult:
        """Fetch one batch; ``day`` is the announcement day wanted (ignored by dayless kinds)."""
        ...

    def fetch_since(
        self, client: httpx.AsyncClient, validators: Validators, day: date, since: date | None
    ) -> AsyncIterator[FetchResult]:
        """Yield one result per day missed since ``since`` (the last successful day) up to
        ``day``, oldest first; kinds without days yield a single ``fetch``."""
        ...
