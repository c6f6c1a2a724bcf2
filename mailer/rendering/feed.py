"""The personal Atom feed (RFC 4287) as the template shows it: entries, ids and dates (pure)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mailer.models import Match
from mailer.rendering.views import PaperView, paper_view

# Characters XML 1.0 forbids (control characters, lone surrogates, U+FFFE/U+FFFF): a paper
# title from the internet may hold one, and one of them makes the whole feed unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML cannot carry replaced by a space (offsets kept)."""
    return _NOT_XML.sub(" ", text)


def rfc3339(moment: datetime) -> str:
    """An Atom date: UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stable_id(*parts: str) -> str:
    """A permanent ``urn:uuid:`` IRI derived from ``parts`` (the same parts, the same id)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)).urn


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One paper of one sent digest as an Atom entry."""

    id: str
    updated: str
    view: PaperView
    authors: tuple[str, ...]
    words: tuple[str, ...]
    categories: tuple[str, ...]
    period: str


def _clean(match: Match) -> Match:
    paper = match.paper
    clean = replace(
        paper,
        title=xml_text(paper.title),
        abstract=xml_text(paper.abstract),
        authors=tuple(xml_text(a) for a in paper.authors),
    )
    return replace(
        match,
        paper=clean,
        interests=tuple(xml_text(i) for i in match.interests),
        terms=tuple(xml_text(t) for t in match.terms),
    )


def feed_entry(base_url: str, match: Match, sent_at: datetime, period: str) -> FeedEntry:
    """The entry for one listed paper: link, authors, highlighted snippet, why it matched."""
    clean = _clean(match)
    paper = clean.paper
    return FeedEntry(
        id=stable_id(base_url, "paper", paper.key),
        updated=rfc3339(sent_at),
        view=paper_view(clean),
        authors=tuple(a for a in paper.authors if a.strip()),
        words=clean.terms,
        categories=tuple(xml_text(c) for c in paper.categories if c.strip()),
        period=period,
    )


@dataclass(frozen=True, slots=True)
class Feed:
    """The whole feed: its id, self link, title, last update and entries (newest first)."""

    id: str
    self_url: str
    title: str
    subtitle: str
    updated: str
    entries: tuple[FeedEntry, ...]


def build_feed(
    *,
    base_url: str,
    feed_key: str,
    self_url: str,
    interests: Sequence[str],
    entries: Sequence[FeedEntry],
    updated: datetime,
) -> Feed:
    """The feed of one subscriber; ``feed_key`` names it stably (the token in the URL does not)."""
    shown = ", ".join(xml_text(i) for i in interests[:5]) + (", …" if len(interests) > 5 else "")
    return Feed(
        id=stable_id(base_url, "feed", feed_key),
        self_url=self_url,
        title="Your paper digest",
        subtitle=f"Papers picked for you on: {shown}" if shown else "Papers picked for you",
        updated=rfc3339(updated),
        entries=tuple(entries),
    )
