"""What the templates show of each paper: safe links, short author lists, grouping (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

from mailer.models import Frequency, Match, Paper, Subscriber
from mailer.rendering.snippets import CUT_AFTER, CUT_BEFORE, Segment, clean_spans, segments, snippet

MAX_AUTHORS = 3

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_SAFE_URL = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PaperView:
    """One paper as the templates show it: all values plain text, escaped by the template."""

    title: tuple[Segment, ...]
    title_text: str
    url: str | None
    authors: str
    snippet: tuple[Segment, ...]
    snippet_text: str
    interests: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    upvotes: int | None
    resembles: str | None = None  # "You may also like": the liked example's title


def safe_url(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL, else None (never link ``javascript:``)."""
    if url and _SAFE_URL.match(url.strip()):
        return url.strip()
    return None


def shorten_authors(authors: Sequence[str]) -> str:
    """The first three authors, then "et al." when there are more."""
    names = [" ".join(a.split()) for a in authors if a.strip()]
    if len(names) <= MAX_AUTHORS:
        return ", ".join(names)
    return ", ".join(names[:MAX_AUTHORS]) + " et al."


def interest_label(interest: str) -> str:
    """How an interest is named in the email ("*" is the trending digest)."""
    return "all papers (trending)" if interest.strip() == "*" else interest.strip()


def paper_links(paper: Paper) -> tuple[tuple[str, str], ...]:
    """The (label, url) links shown under a paper, only those known and safe."""
    abs_label = "arXiv" if paper.url and "arxiv.org" in paper.url else "Abstract"
    candidates = [
        (abs_label, paper.url),
        ("PDF", paper.pdf_url),
        ("Hugging Face", paper.hf_url),
        ("Code", paper.code_url),
        ("Project", paper.project_url),
    ]
    seen: set[str] = set()
    links = []
    for label, url in candidates:
        clean = safe_url(url)
        if clean and clean not in seen:
            seen.add(clean)
            links.append((label, clean))
    return tuple(links)


def paper_view(match: Match) -> PaperView:
    """The template-facing view of one matched paper."""
    paper = match.paper
    snip = snippet(paper.abstract, match.spans)
    title_spans = clean_spans(match.spans, "title", len(paper.title))
    return replace(
        plain_view(paper),
        title=title_segments(paper.title, title_spans),
        snippet=tuple(snip),
        snippet_text=plain_snippet(snip),
        **reason_fields(match.interests, match.resembles),
    )


def plain_view(paper: Paper) -> PaperView:
    """What is shown of a paper whatever matched it: no highlights, no snippet, no reason."""
    return PaperView(
        title=(),
        title_text=" ".join(paper.title.split()),
        url=safe_url(paper.url) or safe_url(paper.hf_url) or safe_url(paper.pdf_url),
        authors=shorten_authors(paper.authors),
        snippet=(),
        snippet_text="",
        interests=(),
        links=paper_links(paper),
        upvotes=paper.upvotes,
    )


def title_segments(title: str, ranges: Sequence[tuple[int, int]]) -> tuple[Segment, ...]:
    """A title split into plain and highlighted runs (``ranges``: its cleaned title spans)."""
    return tuple(segments(title, ranges, 0, len(title)))


class _Reason(TypedDict):
    interests: tuple[str, ...]
    resembles: str | None


def reason_fields(interests: Sequence[str], resembles: str | None) -> _Reason:
    """The view's fields that say why a paper is listed: the interests, or the liked paper."""
    return {
        "interests": tuple(interest_label(i) for i in interests),
        "resembles": " ".join(resembles.split()) if resembles else None,
    }


def plain_snippet(snip: Iterable[Segment]) -> str:
    """The snippet for the text part, its cuts marked in ASCII ("...").

    The text part then travels as 7bit whenever the paper text is ASCII, readable as it is
    rather than quoted-printable.
    """
    return "".join(
        "... " if s is CUT_BEFORE else " ..." if s is CUT_AFTER else s.text for s in snip
    )


def dedupe(matches: Iterable[Match]) -> list[Match]:
    """Matches with each paper once (a weekly digest may see a paper on several days)."""
    seen: set[str] = set()
    unique = []
    for match in matches:
        if match.paper.key not in seen:
            seen.add(match.paper.key)
            unique.append(match)
    return unique


def group_matches(matches: Sequence[Match]) -> list[tuple[str, list[Match]]]:
    """Matches grouped by their first interest, groups in rank order; one unnamed group if all
    share an interest."""
    order: dict[str, list[Match]] = {}
    for match in matches:
        order.setdefault(match.interests[0] if match.interests else "", []).append(match)
    if len(order) == 1:
        return [("", list(matches))]
    return [(interest_label(interest), members) for interest, members in order.items()]


ALSO_LIKE = "You may also like"
OTHER_MATCHES = "Other matches for your keywords"


def learned_sections(matches: Sequence[Match]) -> list[tuple[str, list[Match]]]:
    """A digest ranked by the reader's votes: the picks (unnamed), then "You may also like",
    then the keyword matches ranked below it; empty sections are left out."""
    also = [m for m in matches if m.resembles is not None]
    if not also:
        return [("", list(matches))]
    first = matches.index(also[0])
    picks = [m for m in matches[:first] if m.resembles is None]
    rest = [m for m in matches[first:] if m.resembles is None]
    sections = [("", picks), (ALSO_LIKE, also), (OTHER_MATCHES, rest)]
    return [(label, members) for label, members in sections if members]


def profile_interests(profile: str) -> list[str]:
    """The profile's interests as written, without exclusions, for "why you get this"."""
    parts = (part.strip() for part in re.split(r"[,\n]", profile))
    return [part for part in parts if part and not part.startswith("-")]


def schedule_label(subscriber: Subscriber) -> str:
    """When the subscriber's digest arrives, e.g. "every Monday at 08:00 (Europe/Paris)"."""
    day = (
        f"every {_WEEKDAYS[subscriber.weekday % 7]}"
        if subscriber.frequency == Frequency.WEEKLY
        else "every day"
    )
    return f"{day} at {subscriber.send_time} ({subscriber.timezone})"
