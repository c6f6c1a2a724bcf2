"""``make_source``: turn a ``MAILER_SOURCES`` spec into a configured Source."""

from __future__ import annotations

from pathlib import Path

from mailer.errors import SourceSpecError
from mailer.sources.base import Source
from mailer.sources.files import FileSource
from mailer.sources.hf_daily import HfDailySource
from mailer.sources.http import DEFAULT_POLICY, HttpPolicy

DEFAULT_HF_API_URL = "https://huggingface.co/api/daily_papers"
DEFAULT_ARXIV_FEED_URL = "https://rss.arxiv.org/atom"
SPEC_HELP = "expected hf-daily, arxiv:CATS, rss:URL or file:PATH"


def make_source(
    spec: str,
    *,
    hf_api_url: str = DEFAULT_HF_API_URL,
    arxiv_feed_url: str = DEFAULT_ARXIV_FEED_URL,
    policy: HttpPolicy = DEFAULT_POLICY,
) -> Source:
    """The Source a spec names; SourceSpecError (one line) for an unknown or malformed spec."""
    text = spec.strip()
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind == "hf-daily" and not sep:
        return HfDailySource(hf_api_url, policy)
    if kind == "file" and sep:
        return _file_source(arg, spec)
    raise SourceSpecError(f"unknown source {spec!r}: {SPEC_HELP}")


def _file_source(arg: str, spec: str) -> FileSource:
    if not arg.strip():
        raise SourceSpecError(f"source {spec!r} names no file: use file:PATH")
    return FileSource(Path(arg.strip()).expanduser().resolve())
