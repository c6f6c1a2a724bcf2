"""Claiming due outbox rows: which rows, in what order, and without reading every due row."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, update

try:  # tests/ may or may not be a package; the helpers import either way
    from helpers.delivery_worker import T0, seed
except ModuleNotFoundError:
    from tests.helpers.delivery_worker import T0, seed

from mailer.db.outbox import _lock_due_ids, claim
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow

LEASE = timedelta(minutes=5)


def _set(sessions: SessionFactory, digest_id: int, **values: object) -> None:
    with sessions.begin() as session:
        session.execute(update(DigestRow).where(DigestRow.id == digest_id).values(**values))


def _claimed_ids(sessions: SessionFactory, limit: int) -> list[int]:
    with sessions() as session:
        return [d.digest_id for d in claim(session, T0, T0 + LEASE, limit).digests]


def test_due_rows_of_every_kind_are_claimed_earliest_first(session_factory: SessionFactory) -> None:
    seed(session_factory, 9)  # ids 1..9, pending, due at T0
    _set(session_factory, 2, next_attempt_at=T0 - timedelta(hours=2))
    _set(session_factory, 3, status="retry", next_attempt_at=T0 - timedelta(hours=1))
    _set(session_factory, 4, status="retry", next_attempt_at=T0 + timedelta(minutes=1))  # later
    _set(session_factory, 5, next_attempt_at=None)  # due whenever: first of all
    # A worker that died: its lease ran out, its row is taken over.
    _set(
        session_factory,
        6,
        status="sending",
        lease_until=T0 - timedelta(seconds=1),
        next_attempt_at=T0 - timedelta(minutes=30),
        attempts=1,
    )
    _set(session_factory, 7, status="sending", lease_until=T0 + LEASE)  # a live worker's
    _set(session_factory, 8, status="sent")
    # An abandoned row without a next attempt time sorts with the others that have none.
    _set(
        session_factory,
        9,
        status="sending",
        lease_until=T0 - timedelta(seconds=1),
        next_attempt_at=None,
        attempts=1,
    )

    assert _claimed_ids(session_factory, 4) == [5, 9, 2, 3]
    assert _claimed_ids(session_factory, 10) == [6, 1]  # 4 is not due, 7 and 8 are not ours
    assert _claimed_ids(session_factory, 10) == []


def test_workers_claiming_at_once_take_disjoint_rows_and_leave_none_idle(
    engine: Engine, session_factory: SessionFactory
) -> None:
    """PostgreSQL: a claim locks only the rows it takes, so a second claim finds the others."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one worker; its claim is one statement under the write lock")
    seed(session_factory, 4)
    _set(session_factory, 3, status="retry", next_attempt_at=T0 - timedelta(minutes=1))
    _set(session_factory, 4, status="retry", next_attempt_at=T0 - timedelta(minutes=1))
    with session_factory() as first, first.begin():
        mine = _lock_due_ids(first, T0, 2)  # still locked: this transaction is open
        others = _claimed_ids(session_factory, 2)
    assert sorted(mine + others) == [1, 2, 3, 4]
    assert set(mine).isdisjoint(others) and len(others) == 2


def test_a_claim_reads_rows_off_the_index_and_the_primary_key(
    engine: Engine, session_factory: SessionFactory, db_url: str
) -> None:
    """A claim costs the same however many rows are due (it used to sort all of them)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("the statement under test is SQLite's")
    seed(session_factory, 300)
    statements: list[tuple[str, object]] = []

    def keep(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if statement.startswith("UPDATE digest"):
            statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert len(_claimed_ids(session_factory, 100)) == 100
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    statement, params = statements[0]
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as raw:
        plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", params)]  # type: ignore[arg-type]
    assert plan[0] == "SEARCH digest USING INTEGER PRIMARY KEY (rowid=?)"
    assert not [step for step in plan if step.startswith("SCAN digest")]
    assert [step for step in plan if step.startswith("SEARCH digest USING COVERING INDEX")]
