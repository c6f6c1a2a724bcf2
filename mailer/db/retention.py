"""Retention: which stored digests are old enough to go, deleted in short batches.

A digest goes once it is older than the retention and final (sent, failed, bounced or
skipped: an outbox row still pending, retrying or sending never goes), unless it is its
subscriber's latest: the latest window's end is where the next window starts, and windows
that follow one another are what keeps a paper from being mailed twice. A profile text goes
when no digest refers to it any more. The log of fetches (``fetch_run``, read by `stats` and
`why`) and applied bounce reports older than the retention go too: one grows with time, the
other with the number of subscribers, and neither is needed once the digests it speaks of are
gone (a bounce mailbox's messages are marked read when applied, so an old report's digest of the
message is no longer what stops it from being applied twice). Each batch is its own short
transaction, so a large prune never holds a lock for long. On PostgreSQL the prune ends with a
VACUUM of the digest tables, so the space of what it deleted, and of the row versions each
digest leaves behind on its way from pending to sent, is reused by the next day's digests
(``reclaim``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from mailer.db.tables import BounceReportRow, DigestProfileRow, DigestRow, FetchRunRow
from mailer.models import DigestStatus

FINAL = (
    DigestStatus.SENT.value,
    DigestStatus.FAILED.value,
    DigestStatus.BOUNCED.value,
    DigestStatus.SKIPPED.value,
)
BATCH = 2_000
Step = Callable[[Session], int]  # one batch of a prune: how many rows it deleted


def _prunable(before: datetime) -> Any:
    """Digests older than ``before``, final, and not their subscriber's latest window."""
    later = aliased(DigestRow)
    return (
        (DigestRow.created_at < before)
        & DigestRow.status.in_(FINAL)
        & (
            DigestRow.window_end.is_(None)
            | exists(
                select(later.id).where(
                    later.subscriber_id == DigestRow.subscriber_id,
                    later.window_end > DigestRow.window_end,
                )
            )
        )
    )


def count_old_digests(session: Session, before: datetime) -> int:
    """How many digests a prune at ``before`` would delete."""
    return int(session.scalar(select(func.count()).where(_prunable(before))) or 0)


def delete_old_digests(session: Session, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` of the digests a prune removes (the caller commits); how many."""
    query = select(DigestRow.id).where(_prunable(before)).order_by(DigestRow.id).limit(limit)
    return _delete_ids(session, DigestRow, query)


def _unused(before: datetime | None = None) -> Any:
    """Profile texts no digest refers to (with ``before``: none once the old digests go)."""
    used = DigestRow.profile_id == DigestProfileRow.id
    if before is not None:
        used = used & ~_prunable(before)
    return ~exists(select(DigestRow.id).where(used))


def count_unused_profiles(session: Session, before: datetime | None = None) -> int:
    """Profile texts no digest refers to (with ``before``: once the old digests are gone)."""
    query = select(func.count()).select_from(DigestProfileRow).where(_unused(before))
    return int(session.scalar(query) or 0)


def delete_unused_profiles(
    session: Session, among: Iterable[int] | None = None, limit: int = BATCH
) -> int:
    """Delete up to ``limit`` profile texts no digest refers to (only ``among``, if given).

    A planner that has just chosen a text holds it (``FOR KEY SHARE`` on PostgreSQL), so a
    concurrent delete waits and then fails on the foreign key: that text is kept and the
    batch counts as nothing deleted (the next prune takes it).
    """
    query = select(DigestProfileRow.id).where(_unused())
    if among is not None:
        wanted = list(among)
        if not wanted:
            return 0
        query = query.where(DigestProfileRow.id.in_(wanted))
    ids = list(session.scalars(query.order_by(DigestProfileRow.id).limit(limit)))
    if not ids:
        return 0
    try:
        with session.begin_nested():
            result = session.execute(
                delete(DigestProfileRow).where(DigestProfileRow.id.in_(ids), _unused())
            )
    except IntegrityError:
        return 0
    return int(result.rowcount)  # type: ignore[attr-defined]


def count_old_fetch_runs(session: Session, before: datetime) -> int:
    """How many logged fetches a prune at ``before`` would delete."""
    query = select(func.count()).select_from(FetchRunRow).where(FetchRunRow.at < before)
    return int(session.scalar(query) or 0)


def delete_old_fetch_runs(session: Session, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` logged fetches older than ``before`` (the caller commits)."""
    query = select(FetchRunRow.id).where(FetchRunRow.at < before)
    return _delete_ids(session, FetchRunRow, query.order_by(FetchRunRow.id).limit(limit))


def count_old_bounce_reports(session: Session, before: datetime) -> int:
    """How many applied bounce reports a prune at ``before`` would delete."""
    old = BounceReportRow.received_at < before
    return int(session.scalar(select(func.count()).select_from(BounceReportRow).where(old)) or 0)


def delete_old_bounce_reports(session: Session, before: datetime, limit: int = BATCH) -> int:
    """Delete up to ``limit`` bounce reports received before ``before`` (the caller commits)."""
    query = select(BounceReportRow.id).where(BounceReportRow.received_at < before)
    return _delete_ids(session, BounceReportRow, query.order_by(BounceReportRow.id).limit(limit))


def _delete_ids(
    session: Session, table: type[DigestRow | FetchRunRow | BounceReportRow], query: Any
) -> int:
    ids = list(session.scalars(query))
    if ids:
        session.execute(delete(table).where(table.id.in_(ids)))
    return len(ids)


# SKIP_LOCKED: another worker's prune already vacuuming a table is left to finish it alone.
_VACUUM = "VACUUM (SKIP_LOCKED, ANALYZE) digest, digest_profile"


def reclaim(session: Session) -> bool:
    """On PostgreSQL, VACUUM the digest tables now; whether it ran (SQLite: nothing to do).

    Every digest is written three times in its first day (pending, sending, sent), and each
    version stays in the heap and in every index until a vacuum. Autovacuum reaches a table
    only once a fifth of it is dead (the default scale factor), which a table holding the
    whole retention reaches after days, and not at all where it is turned off: the dead
    versions, about two thirds of a day's bytes, would pile up meanwhile and the outbox grow
    by about 2.2 KB per digest instead of one live row (~0.8 KB, ``bench/outbox_days.py``).
    SQLite reuses a deleted row's space without being asked.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    engine = bind.engine if isinstance(bind, Connection) else bind
    # VACUUM cannot run inside a transaction block.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(_VACUUM)
    return True
