"""Repository functions for readers' examples: votes on papers and seeded library entries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.db.tables import FeedbackRow, PaperRow


@dataclass(frozen=True, slots=True)
class StoredExample:
    """One stored example with the text it is learned from."""

    id: int
    subscriber_id: int
    paper_id: int | None
    key: str
    vote: int
    origin: str
    title: str
    abstract: str
    url: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class NewExample:
    """An example about to be stored (a vote, or an entry of a seeded library)."""

    key: str
    vote: int
    origin: str
    paper_id: int | None = None
    title: str | None = None  # seeded entries only: a stored paper's text is read from it
    abstract: str | None = None


def record(session: Session, subscriber_id: int, example: NewExample, now: datetime) -> bool:
    """Store or replace the example with this key (the last vote wins); True when new."""
    row = session.scalars(
        select(FeedbackRow).where(
            FeedbackRow.subscriber_id == subscriber_id, FeedbackRow.key == example.key
        )
    ).first()
    if row is not None:
        _fill(row, example, now)
        session.flush()
        return False
    try:
        with session.begin_nested():  # a concurrent click on the same link: update instead
            session.add(
                _fill(FeedbackRow(subscriber_id=subscriber_id, key=example.key), example, now)
            )
        return True
    except IntegrityError:
        return record(session, subscriber_id, example, now)


def _fill(row: FeedbackRow, example: NewExample, now: datetime) -> FeedbackRow:
    row.vote = example.vote
    row.origin = example.origin
    row.paper_id = example.paper_id
    row.title = example.title
    row.abstract = example.abstract
    row.at = now
    return row


def clear(session: Session, subscriber_id: int, key: str, vote: int | None = None) -> bool:
    """Forget the example with this key (only if its vote is ``vote``, when given)."""
    query = delete(FeedbackRow).where(
        FeedbackRow.subscriber_id == subscriber_id, FeedbackRow.key == key
    )
    if vote is not None:
        query = query.where(FeedbackRow.vote == vote)
    return bool(session.execute(query).rowcount)  # type: ignore[attr-defined]


def forget(session: Session, subscriber_id: int, example_id: int) -> bool:
    """Forget one example by id, if it is this subscriber's."""
    query = delete(FeedbackRow).where(
        FeedbackRow.subscriber_id == subscriber_id, FeedbackRow.id == example_id
    )
    return bool(session.execute(query).rowcount)  # type: ignore[attr-defined]


def delete_all(session: Session, subscriber_id: int) -> None:
    """Erase every example of a subscriber."""
    session.execute(delete(FeedbackRow).where(FeedbackRow.subscriber_id == subscriber_id))


def vote_on(session: Session, subscriber_id: int, paper_id: int) -> int | None:
    """The subscriber's current vote on a stored paper, if any."""
    return session.scalar(
        select(FeedbackRow.vote).where(
            FeedbackRow.subscriber_id == subscriber_id, FeedbackRow.paper_id == paper_id
        )
    )


def votes_on(session: Session, subscriber_id: int, paper_ids: Iterable[int]) -> dict[int, int]:
    """The subscriber's current votes on these stored papers."""
    wanted = list(paper_ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(FeedbackRow.paper_id, FeedbackRow.vote).where(
            FeedbackRow.subscriber_id == subscriber_id, FeedbackRow.paper_id.in_(wanted)
        )
    ).all()
    return {int(paper_id): int(vote) for paper_id, vote in rows if paper_id is not None}


def count(session: Session, subscriber_id: int) -> int:
    """How many examples a subscriber has."""
    query = select(func.count()).where(FeedbackRow.subscriber_id == subscriber_id)
    return int(session.scalar(query) or 0)


_COLUMNS = (
    FeedbackRow.id,
    FeedbackRow.subscriber_id,
    FeedbackRow.paper_id,
    FeedbackRow.key,
    FeedbackRow.vote,
    FeedbackRow.origin,
    func.coalesce(FeedbackRow.title, PaperRow.title),
    func.coalesce(FeedbackRow.abstract, PaperRow.abstract, ""),
    PaperRow.url,
    FeedbackRow.at,
)


def subscribers_with_examples(session: Session) -> frozenset[int]:
    """Every subscriber with at least one example, in one query.

    The planner asks once a run, then reads examples only for the voters of each chunk: most
    chunks of most fleets hold few voters or none, and a query per chunk for nobody's votes
    costs non-voters more than the learned ranking is allowed to (DESIGN §5: no votes, the
    keyword digest as it was). The (subscriber_id, key) unique index answers it alone.
    """
    return frozenset(int(i) for i in session.scalars(select(FeedbackRow.subscriber_id).distinct()))


def examples_of(
    session: Session, subscriber_ids: Sequence[int], newest: int | None = None
) -> dict[int, list[StoredExample]]:
    """Each subscriber's examples, newest first (at most ``newest`` each), in one query.

    The planner calls this once per chunk of subscribers: most have none, and no query is
    made per subscriber.
    """
    if not subscriber_ids:
        return {}
    rows = session.execute(
        select(*_COLUMNS)
        .outerjoin(PaperRow, PaperRow.id == FeedbackRow.paper_id)
        .where(FeedbackRow.subscriber_id.in_(list(subscriber_ids)))
        .order_by(FeedbackRow.subscriber_id, FeedbackRow.at.desc(), FeedbackRow.id.desc())
    ).all()
    found: dict[int, list[StoredExample]] = {}
    for row in rows:
        mine = found.setdefault(int(row[1]), [])
        if newest is None or len(mine) < newest:
            mine.append(StoredExample(*row[:6], row[6] or "", row[7] or "", row[8], row[9]))
    return found
