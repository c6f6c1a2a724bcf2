"""``make_source``: turn a ``MAILER_SOURCES`` spec into a configured Source.

Specs: ``hf-daily``; ``arxiv:CATS`` with categories joined by ``+`` (``arxiv:cs.LG+cs.CL``),
optionally ``?announce=TYPES`` to choose announce types (``new+cross`` by default; add
``replace`` / ``replace-cross`` to take replacements too); ``rss:URL`` (http or https; a
password or token in the URL is masked in the source's name, so it never reaches the database,
logs or pages); ``file:PATH`` (resolved to an absolute path, which is part of the source's name;
only ``.json``, ``.jsonl`` and ``.txt`` files are accepted).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from mailer.errors import SourceSpecError
from mailer.logs import masked
from mailer.sources import arxiv, files
from mailer.sources.base import DEFAULT_LIMITS, Limits, Source
from mailer.sources.files import FileSource
from mailer.sources.hf_daily import HfDailySource
from mailer.sources.http import DEFAULT_POLICY, HttpPolicy, Throttle
from mailer.sources.rss import RssSource

DEFAULT_HF_API_URL = "https://huggingface.co/api/daily_papers"
DEFAULT_ARXIV_FEED_URL = "https://rss.arxiv.org/atom"
SPEC_HELP = "expected hf-daily, arxiv:CATS, rss:URL or file:PATH"
MAX_SPEC = 500  # a source's name is stored in a 512-character column


def make_source(
    spec: str,
    *,
    hf_api_url: str = DEFAULT_HF_API_URL,
    arxiv_feed_url: str = DEFAULT_ARXIV_FEED_URL,
    policy: HttpPolicy = DEFAULT_POLICY,
    arxiv_throttle: Throttle = arxiv.ARXIV_THROTTLE,
) -> Source:
    """The Source a spec names; SourceSpecError (one line) for an unknown or malformed spec."""
    text = spec.strip()
    if len(text) > MAX_SPEC:
        raise SourceSpecError(f"source {masked(text[:60])!r}… is longer than {MAX_SPEC} characters")
    kind, sep, arg = text.partition(":")
    kind = kind.strip().lower()
    if kind == "hf-daily" and not sep:
        return HfDailySource(hf_api_url, policy)
    if kind == "file" and sep:
        return _file_source(arg, spec, policy.limits)
    if kind == "arxiv" and sep:
        categories, types = _arxiv_args(arg, spec)
        return arxiv.ArxivSource(arxiv_feed_url, categories, types, policy, arxiv_throttle)
    if kind == "rss" and sep:
        return RssSource(_feed_url(arg, spec), policy)
    raise SourceSpecError(f"unknown source {masked(spec)!r}: {SPEC_HELP}")


def _file_source(arg: str, spec: str, limits: Limits = DEFAULT_LIMITS) -> FileSource:
    if not arg.strip():
        raise SourceSpecError(f"source {spec!r} names no file: use file:PATH")
    path = Path(arg.strip()).expanduser().resolve()
    refusal = files.refusal(path)
    if refusal is not None:
        raise SourceSpecError(f"source {spec!r} refused: {refusal}")
    return FileSource(path, limits)


def _arxiv_args(arg: str, spec: str) -> tuple[tuple[str, ...], frozenset[str]]:
    cats_text, _, options = arg.strip().partition("?")
    if not cats_text:
        raise SourceSpecError(f"source {spec!r} names no category: use arxiv:cs.LG+cs.CL")
    try:
        categories = arxiv.parse_categories(cats_text)
    except ValueError as exc:
        raise SourceSpecError(f"source {spec!r}: {exc}") from None
    if not options:
        return categories, arxiv.DEFAULT_TYPES
    name, _, value = options.partition("=")
    types = frozenset(t.strip().lower() for t in value.split("+") if t.strip())
    if name.strip() != "announce" or not types or not types <= arxiv.ANNOUNCE_TYPES:
        allowed = "+".join(sorted(arxiv.ANNOUNCE_TYPES))
        raise SourceSpecError(f"source {spec!r}: expected ?announce= with types from {allowed}")
    return categories, types


def _feed_url(arg: str, spec: str) -> str:
    url = arg.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceSpecError(f"source {masked(spec)!r}: expected rss:http(s)://host/path")
    return url
