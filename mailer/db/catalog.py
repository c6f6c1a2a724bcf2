"""Read-only queries behind the public papers pages: a day's papers, its neighbours, search input.

A paper's day is the UTC date it reached the store (``first_seen_at``, indexed), the same
instant the digests draw their windows from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Row, func, select
from sqlalchemy.orm import Session

from mailer.db.papers import to_paper
from mailer.db.tables import PaperRow
from mailer.models import Paper


class SearchDoc(NamedTuple):
    """What the search index needs of one paper (``matching.store.SearchDoc``)."""

    id: int
    day: date
    upvotes: int | None
    title: str
    abstract: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]


class PaperText(NamedTuple):
    """What checking a phrase or a name needs of one paper (``matching.store.PaperText``)."""

    title: str
    abstract: str
    authors: tuple[str, ...]


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def _day_of(moment: datetime | None) -> date | None:
    return moment.astimezone(UTC).date() if moment is not None else None


def latest_day(session: Session) -> date | None:
    """The newest day with papers."""
    return _day_of(session.scalar(select(func.max(PaperRow.first_seen_at))))


def previous_day(session: Session, day: date) -> date | None:
    """The nearest earlier day with papers."""
    query = select(func.max(PaperRow.first_seen_at)).where(PaperRow.first_seen_at < day_start(day))
    return _day_of(session.scalar(query))


def next_day(session: Session, day: date) -> date | None:
    """The nearest later day with papers."""
    query = select(func.min(PaperRow.first_seen_at)).where(
        PaperRow.first_seen_at >= day_start(day + timedelta(days=1))
    )
    return _day_of(session.scalar(query))


def _on_day(day: date) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (
        PaperRow.first_seen_at >= day_start(day),
        PaperRow.first_seen_at < day_start(day + timedelta(days=1)),
    )


def count_on_day(session: Session, day: date) -> int:
    """How many papers arrived on ``day``."""
    return int(session.scalar(select(func.count()).where(*_on_day(day))) or 0)


def papers_on_day(session: Session, day: date, limit: int, offset: int = 0) -> list[Paper]:
    """One page of a day's papers: most upvoted first, then the newest."""
    query = (
        select(PaperRow)
        .where(*_on_day(day))
        .order_by(
            func.coalesce(PaperRow.upvotes, -1).desc(),
            PaperRow.first_seen_at.desc(),
            PaperRow.id.desc(),
        )
        .limit(limit)
        .offset(offset)
    )
    return [to_paper(row) for row in session.scalars(query)]


_DOC_COLUMNS = (
    PaperRow.id,
    PaperRow.first_seen_at,
    PaperRow.upvotes,
    PaperRow.title,
    PaperRow.abstract,
    PaperRow.authors,
    PaperRow.categories,
)


def _docs(rows: Iterable[Row[Any]]) -> list[SearchDoc]:
    return [
        SearchDoc(
            id=row.id,
            day=row.first_seen_at.astimezone(UTC).date(),
            upvotes=row.upvotes,
            title=row.title,
            abstract=row.abstract or "",
            authors=tuple(row.authors or ()),
            categories=tuple(row.categories or ()),
        )
        for row in rows
    ]


def search_docs(session: Session, after_id: int, limit: int) -> list[SearchDoc]:
    """The next ``limit`` papers after ``after_id``, in id order (to build the search index)."""
    query = select(*_DOC_COLUMNS).where(PaperRow.id > after_id).order_by(PaperRow.id).limit(limit)
    return _docs(session.execute(query))


def changed_docs(session: Session, since: datetime) -> list[SearchDoc]:
    """Papers stored or updated after ``since`` (to top the search index up)."""
    query = select(*_DOC_COLUMNS).where(PaperRow.updated_at > since).order_by(PaperRow.id)
    return _docs(session.execute(query))


def paper_texts(session: Session, ids: Sequence[int]) -> dict[int, PaperText]:
    """Title, abstract and authors of papers by id (what checking a phrase or name needs)."""
    if not ids:
        return {}
    query = select(PaperRow.id, PaperRow.title, PaperRow.abstract, PaperRow.authors).where(
        PaperRow.id.in_(list(ids))
    )
    return {
        paper_id: PaperText(title, abstract or "", tuple(authors or ()))
        for paper_id, title, abstract, authors in session.execute(query)
    }


def papers_with_ids(session: Session, ids: Sequence[int]) -> dict[int, Paper]:
    """Stored papers by id (the shown page of a search); ids no longer stored are left out."""
    if not ids:
        return {}
    rows = session.scalars(select(PaperRow).where(PaperRow.id.in_(list(ids))))
    return {row.id: to_paper(row) for row in rows}
