"""Repository functions for the outbox side the pipeline owns: planning and reading digests."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.db import listing
from mailer.db.listing import Listed, ListingError
from mailer.db.papers import to_paper
from mailer.db.reasons import Reexplainer
from mailer.db.tables import DigestProfileRow, DigestRow, PaperRow, SubscriberRow
from mailer.models import (
    DigestNote,
    DigestStatus,
    Frequency,
    Match,
    Paper,
    Period,
    Subscriber,
    SubscriberStatus,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlannedDigest:
    """A digest decided by the planner, about to become an outbox row."""

    subscriber_id: int
    period: Period
    status: DigestStatus
    note: DigestNote | None
    message_id: str
    matches: Sequence[Match]
    matched_count: int
    considered_count: int
    window_start: datetime | None
    window_end: datetime
    # The profile text the digest was planned with (why each paper matched is recomputed
    # from it when the digest is rendered); None: the subscriber's profile at insert time.
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class StoredDigest:
    """An outbox row with what it lists, as the renderer needs it.

    ``subscriber.profile`` is the text the digest was planned with (the one its papers are
    explained from and its footer names), not the reader's current one.
    """

    id: int
    subscriber: Subscriber
    period: Period
    status: DigestStatus
    message_id: str
    matches: tuple[Match, ...]
    matched_count: int
    considered_count: int
    created_at: datetime
    sent_at: datetime | None


def last_window_end(session: Session, subscriber_id: int) -> datetime | None:
    """Where this subscriber's previous digest window ended (None before the first)."""
    return session.scalar(
        select(func.max(DigestRow.window_end)).where(DigestRow.subscriber_id == subscriber_id)
    )


def last_window_ends(session: Session, subscriber_ids: Sequence[int]) -> dict[int, datetime]:
    """Where each subscriber's previous digest window ended (absent before the first)."""
    if not subscriber_ids:
        return {}
    rows = session.execute(
        select(DigestRow.subscriber_id, func.max(DigestRow.window_end))
        .where(DigestRow.subscriber_id.in_(subscriber_ids))
        .group_by(DigestRow.subscriber_id)
    ).all()
    return {sid: end for sid, end in rows if end is not None}


def existing_periods(session: Session, wanted: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of the (subscriber, period) pairs already have an outbox row."""
    if not wanted:
        return set()
    ids = {sid for sid, _ in wanted}
    periods = {period for _, period in wanted}
    rows = session.execute(
        select(DigestRow.subscriber_id, DigestRow.period).where(
            DigestRow.subscriber_id.in_(ids), DigestRow.period.in_(periods)
        )
    ).all()
    return {(sid, period) for sid, period in rows} & wanted


def digest_for_period(session: Session, subscriber_id: int, period: str) -> DigestRow | None:
    """This subscriber's outbox row for a period key, if there is one."""
    return session.scalars(
        select(DigestRow).where(
            DigestRow.subscriber_id == subscriber_id, DigestRow.period == period
        )
    ).first()


def sent_paper_ids(session: Session, subscriber_id: int, among: Iterable[int]) -> frozenset[int]:
    """Which of ``among`` were already listed in a digest for this subscriber."""
    return sent_paper_ids_many(session, [subscriber_id], among).get(subscriber_id, frozenset())


def sent_paper_ids_many(
    session: Session, subscriber_ids: Sequence[int], among: Iterable[int]
) -> dict[int, frozenset[int]]:
    """Per subscriber, which of ``among`` their digests already listed (absent: none).

    A listed paper arrived before its digest's window ended, so only digests whose window
    ended at or after the earliest arrival among ``among`` can hold one: with contiguous
    windows that is none or the latest, read off the (subscriber, window_end) index.
    """
    wanted = frozenset(among)
    if not wanted or not subscriber_ids:
        return {}
    earliest = _earliest_arrival(session, wanted)
    if earliest is None:
        return {}
    found: dict[int, set[int]] = {}
    for start in range(0, len(subscriber_ids), _IN_CHUNK):
        rows = session.execute(
            select(DigestRow.subscriber_id, DigestRow.listing).where(
                DigestRow.subscriber_id.in_(subscriber_ids[start : start + _IN_CHUNK]),
                DigestRow.window_end >= earliest,
                DigestRow.listing.is_not(None),
            )
        )
        for subscriber_id, value in rows:
            hit = wanted.intersection(_listed_ids(value))
            if hit:
                found.setdefault(subscriber_id, set()).update(hit)
    return {sid: frozenset(ids) for sid, ids in found.items()}


_EARLIEST = "mailer.earliest_arrival"


def _earliest_arrival(session: Session, paper_ids: frozenset[int]) -> datetime | None:
    """When the first of these papers arrived; remembered per session for the same set.

    The planner asks with one window's papers for each of a chunk's subscribers: one query
    per chunk, not per subscriber. An arrival never changes, so a remembered answer is right.
    """
    cache: dict[frozenset[int], datetime | None] = session.info.setdefault(_EARLIEST, {})
    if paper_ids in cache:
        return cache[paper_ids]
    if len(cache) >= 8:
        cache.clear()
    cache[paper_ids] = earliest = _first_arrival(session, list(paper_ids))
    return earliest


def _first_arrival(session: Session, ids: list[int]) -> datetime | None:
    earliest: datetime | None = None
    for start in range(0, len(ids), _IN_CHUNK):
        first = session.scalar(
            select(func.min(PaperRow.first_seen_at)).where(
                PaperRow.id.in_(ids[start : start + _IN_CHUNK])
            )
        )
        if first is not None and (earliest is None or first < earliest):
            earliest = first
    return earliest


def _listed_ids(value: bytes | None) -> tuple[int, ...]:
    if value is None:
        return ()
    try:
        return listing.paper_ids(value)
    except ListingError as exc:  # never expected: logged, and the digest counts as listing none
        log.error("unreadable digest listing: %s", exc)
        return ()


# The Core table, not the ORM entity: one executemany for a chunk, where the ORM's bulk insert
# splits rows into a statement per pattern of NULL columns (hundreds per chunk).
_DIGEST = DigestRow.metadata.tables["digest"]


def insert_digests(session: Session, plans: Sequence[PlannedDigest], now: datetime) -> int:
    """Write many outbox rows at once; how many were new.

    One executemany for the whole chunk in one savepoint (no ORM object per row); if a
    concurrent planner got to one of the periods first (the unique constraint), it falls back
    to row-by-row insert-or-skip.
    """
    if not plans:
        return 0
    rows = _digest_rows(session, plans, now)
    try:
        with session.begin_nested():
            session.execute(_DIGEST.insert(), rows)
        return len(rows)
    except IntegrityError:
        return sum(_insert_one(session, row) is not None for row in rows)


def insert_digest(session: Session, plan: PlannedDigest, now: datetime) -> int | None:
    """Write one outbox row and what it lists; None if the period already had a row.

    Runs in a savepoint so a concurrent planner's row for the same period (the unique
    constraint) is skipped without aborting the caller's transaction.
    """
    return _insert_one(session, _digest_rows(session, [plan], now)[0])


def _insert_one(session: Session, row: dict[str, Any]) -> int | None:
    try:
        with session.begin_nested():
            new_id = session.scalar(_DIGEST.insert().values(row).returning(_DIGEST.c.id))
    except IntegrityError:
        return None
    return int(new_id)


def _digest_rows(
    session: Session, plans: Sequence[PlannedDigest], now: datetime
) -> list[dict[str, Any]]:
    profile_ids = _profile_ids(session, _planned_texts(session, plans))
    return [_digest_row(plan, now, profile_ids.get(i)) for i, plan in enumerate(plans)]


def _planned_texts(session: Session, plans: Sequence[PlannedDigest]) -> dict[int, str]:
    """The profile text of each plan that lists papers, by plan position."""
    listing_plans = [(i, plan) for i, plan in enumerate(plans) if plan.matches]
    unknown = {plan.subscriber_id for _, plan in listing_plans if plan.profile is None}
    current: dict[int, str] = {}
    if unknown:
        query = select(SubscriberRow.id, SubscriberRow.profile).where(SubscriberRow.id.in_(unknown))
        current = dict(session.execute(query).all())
    return {
        i: plan.profile if plan.profile is not None else current.get(plan.subscriber_id, "")
        for i, plan in listing_plans
    }


def _profile_ids(session: Session, texts: dict[int, str]) -> dict[int, int]:
    """The stored profile id of each text (inserted when new), by the same keys."""
    by_hash = {_sha256(text): text for text in texts.values()}
    if not by_hash:
        return {}
    known = _known_profiles(session, list(by_hash))
    missing = [{"sha256": h, "text": t} for h, t in by_hash.items() if h not in known]
    if missing:
        session.execute(_insert_ignoring_known(session), missing)
        known.update(_known_profiles(session, [row["sha256"] for row in missing]))
    return {key: known[_sha256(text)] for key, text in texts.items()}


def _insert_ignoring_known(session: Session) -> Any:
    """An insert of profile texts that leaves one a concurrent planner just stored."""
    dialect = session.get_bind().dialect.name
    build = sqlite_insert if dialect == "sqlite" else postgresql_insert
    return build(DigestProfileRow).on_conflict_do_nothing(index_elements=["sha256"])


def _known_profiles(session: Session, hashes: list[str]) -> dict[str, int]:
    known: dict[str, int] = {}
    for start in range(0, len(hashes), _IN_CHUNK):
        # Held until the caller commits, so a prune cannot delete a text about to be used.
        query = select(DigestProfileRow.sha256, DigestProfileRow.id).where(
            DigestProfileRow.sha256.in_(hashes[start : start + _IN_CHUNK])
        )
        rows = session.execute(query.with_for_update(key_share=True))
        known.update((sha256, profile_id) for sha256, profile_id in rows)
    return known


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _digest_row(plan: PlannedDigest, now: datetime, profile_id: int | None) -> dict[str, Any]:
    return {
        "subscriber_id": plan.subscriber_id,
        "period": plan.period.key,
        "status": plan.status.value,
        "note": plan.note.value if plan.note else None,
        "message_id": plan.message_id,
        "paper_count": len(plan.matches),
        "matched_count": plan.matched_count,
        "considered_count": plan.considered_count,
        "window_start": plan.window_start,
        "window_end": plan.window_end,
        "attempts": 0,
        "next_attempt_at": now if plan.status is DigestStatus.PENDING else None,
        "created_at": now,
        "listing": listing.pack([_stored(m) for m in plan.matches]) if plan.matches else None,
        "profile_id": profile_id,
    }


def _stored(match: Match) -> Listed:
    assert match.paper.id is not None  # planned papers come from the store
    return Listed(match.paper.id, match.score, match.learned, match.resembles)


def load_digest(session: Session, digest_id: int) -> StoredDigest | None:
    """An outbox row with its subscriber and listed papers in rank order."""
    return load_digests(session, [digest_id]).get(digest_id)


_IN_CHUNK = 500  # ids per IN (...): well inside every backend's bound-parameter limit


class PaperCache:
    """Papers by id, each kept ``ttl`` seconds: loaded once per sending run, not once per batch.

    Every digest of a run lists papers from the same few hundred, and reading them again for
    each batch was a fifth of a render process's work. A paper refreshed by a fetch meanwhile
    (new upvotes) shows its new values within ``ttl``, as fast as the run would have reached
    it anyway. Bounded: past ``limit`` papers the cache starts afresh. It also keeps the
    index over which listed papers are re-explained (``mailer.db.reasons``).
    """

    def __init__(
        self, ttl: float = 60.0, limit: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self.clock = clock
        self._papers: dict[int, tuple[float, Paper]] = {}
        # Why each listed paper matched, recomputed over one index kept for the run.
        self.reasons = Reexplainer()

    def take(self, paper_ids: Iterable[int]) -> tuple[dict[int, Paper], list[int]]:
        """The papers still fresh here, and the ids to load."""
        now = self.clock()
        found: dict[int, Paper] = {}
        missing: list[int] = []
        for paper_id in paper_ids:
            entry = self._papers.get(paper_id)
            if entry is not None and entry[0] > now:
                found[paper_id] = entry[1]
            else:
                missing.append(paper_id)
        return found, missing

    def keep(self, papers: dict[int, Paper]) -> None:
        """Remember freshly loaded papers."""
        if len(self._papers) + len(papers) > self.limit:
            self._papers.clear()
            if len(papers) > self.limit:
                return
        expires = self.clock() + self.ttl
        for paper_id, paper in papers.items():
            self._papers[paper_id] = (expires, paper)


def load_digests(
    session: Session, digest_ids: Sequence[int], papers: PaperCache | None = None
) -> dict[int, StoredDigest]:
    """Many outbox rows by id, each with its subscriber and listed papers in rank order.

    Three queries per chunk of ids whatever their number, and each paper converted once
    however many digests list it: the sender loads a whole claimed batch this way. With a
    ``papers`` cache, papers it holds are not read again.
    """
    found: dict[int, StoredDigest] = {}
    ids = list(dict.fromkeys(digest_ids))
    for start in range(0, len(ids), _IN_CHUNK):
        found.update(_load_chunk(session, ids[start : start + _IN_CHUNK], papers))
    return found


_HEAD = (
    DigestRow.id,
    DigestRow.period,
    DigestRow.status,
    DigestRow.message_id,
    DigestRow.matched_count,
    DigestRow.considered_count,
    DigestRow.created_at,
    DigestRow.sent_at,
    DigestRow.listing,
    DigestRow.profile_id,
    DigestRow.window_start,
    DigestRow.window_end,
)
# Only what a Subscriber holds: the row also carries the compiled profile, which is large.
_SUBSCRIBER = (
    SubscriberRow.id,
    SubscriberRow.email,
    SubscriberRow.status,
    SubscriberRow.profile,
    SubscriberRow.frequency,
    SubscriberRow.send_time,
    SubscriberRow.timezone,
    SubscriberRow.weekday,
    SubscriberRow.created_at,
    SubscriberRow.confirmed_at,
)


def _load_chunk(
    session: Session, ids: list[int], cache: PaperCache | None
) -> dict[int, StoredDigest]:
    heads = session.execute(
        select(*_HEAD, *_SUBSCRIBER)
        .join(SubscriberRow, SubscriberRow.id == DigestRow.subscriber_id)
        .where(DigestRow.id.in_(ids))
    ).all()
    width = len(_HEAD)
    listed = {row[0]: _unpacked(row[0], row.listing) for row in heads}  # row[0]: the digest id
    profiles = _profile_texts(session, {row.profile_id for row in heads} - {None})
    papers = _cached_papers(
        session, {item.paper_id for items in listed.values() for item in items}, cache
    )
    explain = cache.reasons if cache is not None else Reexplainer()
    if cache is not None and not explain.holds(papers.values()):
        # A run's batches list papers of the same windows: index all of them at once, not
        # again each time a batch brings one more.
        spans = [(row.window_start, row.window_end) for row in heads]
        window = _window_papers(session, spans, explain.limit)
        cache.keep({pid: paper for pid, paper in window.items() if pid not in papers})
        papers = {**window, **papers}
    explain.prepare(papers.values())
    found: dict[int, StoredDigest] = {}
    for row in heads:
        head: tuple[Any, ...] = tuple(row)
        digest_id, period, status, message_id, matched, considered, created, sent = head[:8]
        planned = profiles.get(row.profile_id)
        subscriber = _subscriber(*head[width:])
        if planned is not None:  # the email names the interests it was planned with
            subscriber = replace(subscriber, profile=planned)
        found[int(digest_id)] = StoredDigest(
            id=int(digest_id),
            subscriber=subscriber,
            period=Period.parse(period),
            status=DigestStatus(status),
            message_id=message_id,
            matches=tuple(explain.matches(listed[digest_id], papers, planned)),
            matched_count=matched,
            considered_count=considered,
            created_at=created,
            sent_at=sent,
        )
    return found


def _window_papers(
    session: Session, windows: Sequence[tuple[datetime | None, datetime | None]], limit: int
) -> dict[int, Paper]:
    """The papers that arrived in these digests' windows; none if over ``limit``."""
    starts = [start for start, end in windows if start is not None and end is not None]
    ends = [end for start, end in windows if start is not None and end is not None]
    if not starts:
        return {}
    arrived = (PaperRow.first_seen_at > min(starts)) & (PaperRow.first_seen_at <= max(ends))
    if (session.scalar(select(func.count()).where(arrived)) or 0) > limit:
        return {}
    return {row.id: to_paper(row) for row in session.scalars(select(PaperRow).where(arrived))}


def _unpacked(digest_id: int, value: bytes | None) -> list[Listed]:
    if value is None:
        return []
    try:
        return listing.unpack(value)
    except ListingError as exc:  # never expected: the digest renders as listing nothing
        log.error("unreadable listing digest=%d: %s", digest_id, exc)
        return []


def _profile_texts(session: Session, profile_ids: set[int]) -> dict[int, str]:
    if not profile_ids:
        return {}
    rows = session.execute(
        select(DigestProfileRow.id, DigestProfileRow.text).where(
            DigestProfileRow.id.in_(profile_ids)
        )
    )
    return dict(rows.all())


def _subscriber(
    sid: int,
    email: str,
    status: str,
    profile: str,
    frequency: str,
    send_time: str,
    timezone: str,
    weekday: int,
    created_at: datetime | None,
    confirmed_at: datetime | None,
) -> Subscriber:
    return Subscriber(
        id=sid,
        email=email,
        status=SubscriberStatus(status),
        profile=profile,
        frequency=Frequency(frequency),
        send_time=send_time,
        timezone=timezone,
        weekday=weekday,
        created_at=created_at,
        confirmed_at=confirmed_at,
    )


def _cached_papers(
    session: Session, wanted: set[int], cache: PaperCache | None
) -> dict[int, Paper]:
    if cache is None:
        return _papers(session, wanted)
    papers, missing = cache.take(wanted)
    loaded = _papers(session, missing)
    cache.keep(loaded)
    papers.update(loaded)
    return papers


def _papers(session: Session, paper_ids: Iterable[int]) -> dict[int, Paper]:
    wanted = list(paper_ids)
    papers: dict[int, Paper] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        for row in session.scalars(select(PaperRow).where(PaperRow.id.in_(chunk))):
            papers[row.id] = to_paper(row)
    return papers


def digests_for(session: Session, subscriber_id: int, limit: int = 20) -> list[DigestRow]:
    """A subscriber's most recent outbox rows, newest first."""
    return list(
        session.scalars(
            select(DigestRow)
            .where(DigestRow.subscriber_id == subscriber_id)
            .order_by(DigestRow.created_at.desc(), DigestRow.id.desc())
            .limit(limit)
        )
    )


def every_digest_of(session: Session, subscriber_id: int) -> list[DigestRow]:
    """All of a subscriber's outbox rows, oldest first (for a data access request)."""
    query = select(DigestRow).where(DigestRow.subscriber_id == subscriber_id)
    return list(session.scalars(query.order_by(DigestRow.created_at, DigestRow.id)))


def listed_titles(session: Session, digest_id: int) -> list[tuple[str, str | None, list[str]]]:
    """What a digest listed, in rank order: (title, url, interests matched) per paper."""
    stored = load_digest(session, digest_id)
    if stored is None:
        return []
    return [(m.paper.title, m.paper.url, list(m.interests)) for m in stored.matches]


def sent_digests(session: Session, subscriber_id: int, limit: int) -> list[DigestRow]:
    """A subscriber's latest sent digests, newest first."""
    query = (
        select(DigestRow)
        .where(
            DigestRow.subscriber_id == subscriber_id,
            DigestRow.status == DigestStatus.SENT.value,
        )
        .order_by(DigestRow.sent_at.desc(), DigestRow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def count_by_status(session: Session) -> dict[str, int]:
    """How many outbox rows are in each status."""
    rows = session.execute(select(DigestRow.status, func.count()).group_by(DigestRow.status)).all()
    return {str(status): int(count) for status, count in rows}


def last_sent_at(session: Session) -> datetime | None:
    """When any digest was last accepted by the mail server (for /healthz)."""
    return session.scalar(
        select(func.max(DigestRow.sent_at)).where(DigestRow.status == DigestStatus.SENT.value)
    )
