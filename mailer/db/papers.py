"""Repository functions for papers: upsert by identity, load by arrival window."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from mailer.db.tables import PaperRow
from mailer.models import Paper

_LINK_FIELDS = ("url", "pdf_url", "hf_url", "code_url", "project_url", "thumbnail_url")


@dataclass(frozen=True, slots=True)
class UpsertStats:
    """What an upsert did: papers new to the store, and known papers refreshed."""

    new: int
    updated: int


def to_paper(row: PaperRow) -> Paper:
    """The dataclass view of a paper row."""
    return Paper(
        key=row.key,
        title=row.title,
        abstract=row.abstract,
        authors=tuple(row.authors or ()),
        categories=tuple(row.categories or ()),
        keywords=tuple(row.keywords or ()),
        arxiv_id=row.arxiv_id,
        url=row.url,
        pdf_url=row.pdf_url,
        hf_url=row.hf_url,
        code_url=row.code_url,
        project_url=row.project_url,
        thumbnail_url=row.thumbnail_url,
        published=row.published,
        upvotes=row.upvotes,
        comments=row.comments,
        source=",".join(row.sources or ()),
        id=row.id,
        first_seen=row.first_seen_at,
    )


def _existing(session: Session, papers: Sequence[Paper]) -> dict[str, PaperRow]:
    """Stored rows that any of ``papers`` is, by key or by arXiv id."""
    keys = {p.key for p in papers}
    arxiv_ids = {p.arxiv_id for p in papers if p.arxiv_id}
    clauses = [PaperRow.key.in_(keys)]
    if arxiv_ids:
        clauses.append(PaperRow.arxiv_id.in_(arxiv_ids))
    found: dict[str, PaperRow] = {}
    for row in session.scalars(select(PaperRow).where(or_(*clauses))):
        found[row.key] = row
        if row.arxiv_id:
            found[f"arxiv:{row.arxiv_id}"] = row
    return found


def _merge(row: PaperRow, paper: Paper, now: datetime) -> bool:
    """Refresh a stored paper from a new sighting; True when anything changed."""
    before = (row.title, row.abstract, row.upvotes, row.comments, list(row.sources or ()))
    row.title = paper.title or row.title
    row.abstract = paper.abstract or row.abstract
    row.authors = list(paper.authors) or row.authors
    row.categories = sorted(set(row.categories or ()) | set(paper.categories))
    row.keywords = list(paper.keywords) or row.keywords
    row.arxiv_id = row.arxiv_id or paper.arxiv_id
    for name in _LINK_FIELDS:
        setattr(row, name, getattr(paper, name) or getattr(row, name))
    row.published = row.published or paper.published
    if paper.upvotes is not None:
        row.upvotes = paper.upvotes
    if paper.comments is not None:
        row.comments = paper.comments
    if paper.source and paper.source not in (row.sources or ()):
        row.sources = [*(row.sources or ()), paper.source]
    changed = before != (row.title, row.abstract, row.upvotes, row.comments, list(row.sources))
    if changed:
        row.updated_at = now
    return changed


def _new_row(paper: Paper, now: datetime) -> PaperRow:
    return PaperRow(
        key=paper.key,
        arxiv_id=paper.arxiv_id,
        title=paper.title,
        abstract=paper.abstract,
        authors=list(paper.authors),
        categories=list(paper.categories),
        keywords=list(paper.keywords),
        sources=[paper.source] if paper.source else [],
        published=paper.published,
        upvotes=paper.upvotes,
        comments=paper.comments,
        first_seen_at=now,
        updated_at=now,
        **{name: getattr(paper, name) for name in _LINK_FIELDS},
    )


def upsert_papers(session: Session, papers: Sequence[Paper], now: datetime) -> UpsertStats:
    """Store papers by identity: new ones inserted, known ones refreshed (the caller commits)."""
    known = _existing(session, papers)
    new = updated = 0
    for paper in papers:
        row = known.get(paper.key) or (
            known.get(f"arxiv:{paper.arxiv_id}") if paper.arxiv_id else None
        )
        if row is None:
            row = _new_row(paper, now)
            session.add(row)
            new += 1
        elif _merge(row, paper, now):
            updated += 1
        known[paper.key] = row
        if paper.arxiv_id:
            known[f"arxiv:{paper.arxiv_id}"] = row
    session.flush()
    return UpsertStats(new=new, updated=updated)


def papers_first_seen(session: Session, start: datetime | None, end: datetime) -> list[Paper]:
    """Papers that arrived in ``(start, end]`` (all up to ``end`` when start is None)."""
    query = select(PaperRow).where(PaperRow.first_seen_at <= end).order_by(PaperRow.id)
    if start is not None:
        query = query.where(PaperRow.first_seen_at > start)
    return [to_paper(row) for row in session.scalars(query)]


def papers_by_id(session: Session, ids: Iterable[int]) -> dict[int, Paper]:
    """Stored papers by id."""
    wanted = list(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(PaperRow).where(PaperRow.id.in_(wanted)))
    return {row.id: to_paper(row) for row in rows}


def papers_by_arxiv_id(session: Session, arxiv_ids: Iterable[str]) -> dict[str, Paper]:
    """Stored papers by arXiv id (without version)."""
    wanted = list(set(arxiv_ids))
    found: dict[str, Paper] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for row in session.scalars(select(PaperRow).where(PaperRow.arxiv_id.in_(chunk))):
            if row.arxiv_id:
                found[row.arxiv_id] = to_paper(row)
    return found


def paper_by_ref(session: Session, ref: str) -> Paper | None:
    """A stored paper by its key (``arxiv:2303.04137``, ``hf:...``) or its arXiv id."""
    row = session.scalars(
        select(PaperRow).where(or_(PaperRow.key == ref, PaperRow.arxiv_id == ref)).limit(1)
    ).first()
    return to_paper(row) if row is not None else None


def newest_texts(session: Session, limit: int) -> list[tuple[int, str, str]]:
    """The ids, titles and abstracts of the newest ``limit`` stored papers."""
    rows = session.execute(
        select(PaperRow.id, PaperRow.title, PaperRow.abstract)
        .order_by(PaperRow.id.desc())
        .limit(limit)
    ).all()
    return [(int(id_), title, abstract or "") for id_, title, abstract in rows]


def store_version(session: Session) -> tuple[int, int]:
    """(newest paper id, paper count): changes whenever a paper is added or removed."""
    newest, count = session.execute(select(func.max(PaperRow.id), func.count(PaperRow.id))).one()
    return int(newest or 0), int(count or 0)
