"""Paper sources: one module per kind, each a pure ``parse(bytes)`` and a thin async fetch."""

from __future__ import annotations

from pathlib import Path

from mailer.sources.base import FetchResult, ParseResult, Source, Validators
from mailer.sources.calendar import catch_up_days, expected_announcement
from mailer.sources.http import USER_AGENT, HttpPolicy, Throttle
from mailer.sources.identity import normalise_arxiv_id, normalise_title, paper_identity, title_key
from mailer.sources.registry import make_source

SAMPLE_PATH = Path(__file__).resolve().parent.parent / "data" / "sample_papers.jsonl"

__all__ = [
    "SAMPLE_PATH",
    "USER_AGENT",
    "FetchResult",
    "HttpPolicy",
    "ParseResult",
    "Source",
    "Throttle",
    "Validators",
    "catch_up_days",
    "expected_announcement",
    "make_source",
    "normalise_arxiv_id",
    "normalise_title",
    "paper_identity",
    "title_key",
]
