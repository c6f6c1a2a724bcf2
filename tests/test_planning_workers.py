"""Planning shared by workers: chunks claimed with SKIP LOCKED, released by a crash."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from mailer.context import Defaults, PlanOptions
from mailer.db import papers as paper_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.models import Paper
from mailer.pipeline.learning import Learner
from mailer.pipeline.plan import DigestPlanner, PlanReport
from mailer.subscribers.manage import SubscriberInput, add

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SUBSCRIBERS = 6
CHUNK = 2


class _Meanwhile(Learner):
    """Runs ``action`` when the planner has claimed its first chunk, before it writes it.

    The learner is loaded with each claimed chunk, inside the chunk's transaction: the one
    moment a second planner must find those subscribers taken.
    """

    def __init__(self, action: Callable[[], object]) -> None:
        super().__init__()
        self.action = action
        self.done = False

    def load(self, session: Session, subscriber_ids: Sequence[int]) -> None:
        super().load(session, subscriber_ids)
        if not self.done:
            self.done = True
            self.action()


def _seed(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        paper = Paper(key="a", title="Diffusion policy", abstract="", source="test")
        paper_repo.upsert_papers(session, [paper], T0 - timedelta(hours=1))
    for n in range(SUBSCRIBERS):
        raw = SubscriberInput(f"reader{n}@example.org", "diffusion", send_time="08:00")
        add(sessions, raw, confirmed=True, defaults=Defaults(), now=T0 - timedelta(hours=2))


def _planner(sessions: SessionFactory, learner: Learner | None = None) -> DigestPlanner:
    counter = iter(range(1_000_000))
    return DigestPlanner(
        sessions,
        new_message_id=lambda: f"<{next(counter)}@example.org>",
        options=PlanOptions(first_digest_backfill=True),
        learner=learner,
        chunk=CHUNK,
    )


def _planned(report: PlanReport) -> int:
    return report.queued + report.no_match + report.no_papers


def _digests_per_subscriber(sessions: SessionFactory) -> list[int]:
    with sessions() as session:
        query = select(func.count()).select_from(DigestRow).group_by(DigestRow.subscriber_id)
        return sorted(session.scalars(query))


def test_two_planners_share_the_due_set_and_never_plan_one_subscriber_twice(
    engine: Engine, session_factory: SessionFactory
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's; SQLite has one writer")
    _seed(session_factory)
    second: list[PlanReport] = []

    def plan_everything_else() -> None:  # another worker, while the first holds its chunk
        second.append(_planner(session_factory).run(now=T0, force=False, dry_run=False))

    first = _planner(session_factory, _Meanwhile(plan_everything_else))
    report = first.run(now=T0, force=False, dry_run=False)

    assert (_planned(report), _planned(second[0])) == (CHUNK, SUBSCRIBERS - CHUNK)
    assert _digests_per_subscriber(session_factory) == [1] * SUBSCRIBERS


def test_a_planner_that_dies_mid_chunk_leaves_its_chunk_to_the_next(
    session_factory: SessionFactory,
) -> None:
    _seed(session_factory)

    def crash() -> None:
        raise RuntimeError("killed mid-chunk")

    with pytest.raises(RuntimeError):
        _planner(session_factory, _Meanwhile(crash)).run(now=T0, force=False, dry_run=False)
    assert _digests_per_subscriber(session_factory) == []
    report = _planner(session_factory).run(now=T0, force=False, dry_run=False)
    assert _planned(report) == SUBSCRIBERS
    assert _digests_per_subscriber(session_factory) == [1] * SUBSCRIBERS


def test_due_subscribers_are_read_longest_due_first_from_the_last_one_read(
    session_factory: SessionFactory,
) -> None:
    _seed(session_factory)
    with session_factory.begin() as session:  # due at different times, one not due yet
        ids = list(session.scalars(select(SubscriberRow.id).order_by(SubscriberRow.id)))
        dues = [T0 - timedelta(minutes=m) for m in (5, 30, 5, 60, 30)] + [T0 + timedelta(hours=1)]
        for sid, due in zip(ids, dues, strict=True):
            session.execute(
                update(SubscriberRow).where(SubscriberRow.id == sid).values(next_due_at=due)
            )
    expected = sorted((due, sid) for sid, due in zip(ids, dues, strict=True) if due <= T0)
    read: list[tuple[datetime, int]] = []
    after = None
    with session_factory() as session:
        while chunk := subscriber_repo.due_subscribers(session, T0, after, CHUNK):
            read.extend((row.next_due_at, row.id) for row in chunk if row.next_due_at)
            after = chunk[-1]
    assert read == expected
