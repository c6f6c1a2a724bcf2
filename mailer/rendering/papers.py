"""The public papers pages as templates and the JSON API show them: days, searches, pages (pure).

The JSON field names are a documented, stable contract (README, "Papers API"): add fields,
never rename or remove them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from mailer.models import Match, Paper
from mailer.rendering.views import PaperView, paper_view, safe_url


def day_label(day: date) -> str:
    """``Thursday 6 August 2026``."""
    return f"{day:%A} {day.day} {day:%B %Y}"


def short_day(day: date) -> str:
    """``Thu 6 Aug``."""
    return f"{day:%a} {day.day} {day:%b}"


@dataclass(frozen=True, slots=True)
class Pager:
    """Where a page sits among the results."""

    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages the results fill (at least one)."""
        return max(1, -(-self.total // self.per_page))

    @property
    def offset(self) -> int:
        """Results before this page."""
        return (self.page - 1) * self.per_page

    @property
    def previous(self) -> int | None:
        """The previous page number, if any."""
        return self.page - 1 if self.page > 1 else None

    @property
    def next(self) -> int | None:
        """The next page number, if any."""
        return self.page + 1 if self.page < self.pages else None

    @property
    def first_shown(self) -> int:
        """The number of the first result on this page (1-based; 0 when there are none)."""
        return min(self.offset + 1, self.total)

    @property
    def last_shown(self) -> int:
        """The number of the last result on this page."""
        return min(self.offset + self.per_page, self.total)


@dataclass(frozen=True, slots=True)
class DayPage:
    """One page of one day's papers, most upvoted first."""

    day: date
    papers: tuple[Paper, ...]
    pager: Pager
    previous_day: date | None
    next_day: date | None
    notice: str | None = None

    @property
    def views(self) -> tuple[PaperView, ...]:
        """The papers as the template shows them."""
        return tuple(paper_view(Match(p, 0.0, ())) for p in self.papers)

    def json(self) -> dict[str, Any]:
        """The API answer for this page."""
        return {
            "date": self.day.isoformat(),
            "previous_date": _iso(self.previous_day),
            "next_date": _iso(self.next_day),
            "notice": self.notice,
            **_pager_json(self.pager),
            "papers": [paper_json(p) for p in self.papers],
        }


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a search: matches newest first or by relevance, or the query's error."""

    query: str
    order: str
    matches: tuple[Match, ...]
    pager: Pager
    error: str | None = None
    error_position: int | None = None
    considered: int = 0

    @property
    def views(self) -> tuple[PaperView, ...]:
        """The matches as the template shows them, words highlighted."""
        return tuple(paper_view(m) for m in self.matches)

    def json(self) -> dict[str, Any]:
        """The API answer for this page."""
        error = None
        if self.error is not None:
            error = {"message": self.error, "position": self.error_position}
        return {
            "query": self.query,
            "order": self.order,
            "error": error,
            "considered": self.considered,
            **_pager_json(self.pager),
            "papers": [{**paper_json(m.paper), "match": match_json(m)} for m in self.matches],
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _pager_json(pager: Pager) -> dict[str, int]:
    return {
        "page": pager.page,
        "per_page": pager.per_page,
        "pages": pager.pages,
        "total": pager.total,
    }


def paper_json(paper: Paper) -> dict[str, Any]:
    """A paper in the API: every link is an absolute http(s) URL or null."""
    return {
        "key": paper.key,
        "arxiv_id": paper.arxiv_id,
        "title": paper.title,
        "abstract": paper.abstract,
        "authors": list(paper.authors),
        "categories": list(paper.categories),
        "url": safe_url(paper.url),
        "pdf_url": safe_url(paper.pdf_url),
        "hf_url": safe_url(paper.hf_url),
        "code_url": safe_url(paper.code_url),
        "project_url": safe_url(paper.project_url),
        "upvotes": paper.upvotes,
        "comments": paper.comments,
        "published": _iso(paper.published),
        "day": paper.first_seen.date().isoformat() if paper.first_seen else None,
    }


def match_json(match: Match) -> dict[str, Any]:
    """Why a paper matched: interests, the words found, highlight ranges in title / abstract."""
    return {
        "interests": list(match.interests),
        "words": list(match.terms),
        "highlights": [
            {"field": span.field, "start": span.start, "end": span.end} for span in match.spans
        ],
    }
