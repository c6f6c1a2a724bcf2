"""Repository functions for the outbox side the pipeline owns: planning and reading digests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Text, cast, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.db.papers import to_paper
from mailer.db.tables import DigestPaperRow, DigestRow, PaperRow, SubscriberRow
from mailer.models import (
    DigestNote,
    DigestStatus,
    Frequency,
    Match,
    Paper,
    Period,
    Span,
    Subscriber,
    SubscriberStatus,
)

T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class StoredDigest:
    """An outbox row with what it lists, as the renderer needs it."""

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
    wanted = list(among)
    if not wanted:
        return frozenset()
    rows = session.scalars(
        select(DigestPaperRow.paper_id).where(
            DigestPaperRow.subscriber_id == subscriber_id, DigestPaperRow.paper_id.in_(wanted)
        )
    )
    return frozenset(rows)


def insert_digests(session: Session, plans: Sequence[PlannedDigest], now: datetime) -> int:
    """Write many outbox rows at once; how many were new.

    The fast path inserts the whole chunk in one savepoint; if a concurrent planner got to one
    of the periods first (the unique constraint), it falls back to row-by-row insert-or-skip.
    """
    if not plans:
        return 0
    try:
        with session.begin_nested():
            for plan in plans:
                _add(session, plan, now)
        return len(plans)
    except IntegrityError:
        return sum(insert_digest(session, plan, now) is not None for plan in plans)


def _add(session: Session, plan: PlannedDigest, now: datetime) -> int:
    row = _digest_row(plan, now)
    session.add(row)
    session.flush()
    session.add_all(_paper_rows(row.id, plan))
    session.flush()
    return row.id


def _digest_row(plan: PlannedDigest, now: datetime) -> DigestRow:
    return DigestRow(
        subscriber_id=plan.subscriber_id,
        period=plan.period.key,
        status=plan.status.value,
        note=plan.note.value if plan.note else None,
        message_id=plan.message_id,
        paper_count=len(plan.matches),
        matched_count=plan.matched_count,
        considered_count=plan.considered_count,
        window_start=plan.window_start,
        window_end=plan.window_end,
        attempts=0,
        next_attempt_at=now if plan.status is DigestStatus.PENDING else None,
        created_at=now,
    )


def insert_digest(session: Session, plan: PlannedDigest, now: datetime) -> int | None:
    """Write one outbox row and its papers; None if the period already had a row.

    Runs in a savepoint so a concurrent planner's row for the same period (the unique
    constraint) is skipped without aborting the caller's transaction.
    """
    try:
        with session.begin_nested():
            return _add(session, plan, now)
    except IntegrityError:
        return None


def _paper_rows(digest_id: int, plan: PlannedDigest) -> list[DigestPaperRow]:
    return [
        DigestPaperRow(
            digest_id=digest_id,
            paper_id=match.paper.id,
            subscriber_id=plan.subscriber_id,
            rank=rank,
            score=match.score,
            interests=list(match.interests),
            terms=list(match.terms),
            spans=[[span.field, span.start, span.end] for span in match.spans],
            learned=match.learned,
            resembles=match.resembles,
        )
        for rank, match in enumerate(plan.matches, start=1)
    ]


def load_digest(session: Session, digest_id: int) -> StoredDigest | None:
    """An outbox row with its subscriber and listed papers in rank order."""
    return load_digests(session, [digest_id]).get(digest_id)


_IN_CHUNK = 500  # ids per IN (...): well inside every backend's bound-parameter limit


class PaperCache:
    """Papers by id, each kept ``ttl`` seconds: loaded once per sending run, not once per batch.

    Every digest of a run lists papers from the same few hundred, and reading them again for
    each batch was a fifth of a render process's work. A paper refreshed by a fetch meanwhile
    (new upvotes) shows its new values within ``ttl``, as fast as the run would have reached
    it anyway. Bounded: past ``limit`` papers the cache starts afresh.
    """

    def __init__(
        self, ttl: float = 60.0, limit: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.limit = limit
        self.clock = clock
        self._papers: dict[int, tuple[float, Paper]] = {}

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
    listed = _listed(session, ids, cache)
    width = len(_HEAD)
    found: dict[int, StoredDigest] = {}
    for row in heads:
        head: tuple[Any, ...] = tuple(row)
        digest_id, period, status, message_id, matched, considered, created, sent = head[:width]
        found[int(digest_id)] = StoredDigest(
            id=int(digest_id),
            subscriber=_subscriber(*head[width:]),
            period=Period.parse(period),
            status=DigestStatus(status),
            message_id=message_id,
            matches=tuple(listed.get(digest_id, ())),
            matched_count=matched,
            considered_count=considered,
            created_at=created,
            sent_at=sent,
        )
    return found


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


def _listed(
    session: Session, digest_ids: list[int], cache: PaperCache | None
) -> dict[int, list[Match]]:
    """Each digest's matches in rank order, the papers loaded once for all of them."""
    # The JSON columns come back as text and are decoded once per distinct value: a batch
    # repeats the same interests, terms and spans thousands of times.
    links = session.execute(
        select(
            DigestPaperRow.digest_id,
            DigestPaperRow.paper_id,
            DigestPaperRow.score,
            cast(DigestPaperRow.interests, Text),
            cast(DigestPaperRow.terms, Text),
            cast(DigestPaperRow.spans, Text),
            DigestPaperRow.learned,
            DigestPaperRow.resembles,
        )
        .where(DigestPaperRow.digest_id.in_(digest_ids))
        .order_by(DigestPaperRow.digest_id, DigestPaperRow.rank)
    ).all()
    wanted = {link.paper_id for link in links}
    if cache is None:
        papers = _papers(session, wanted)
    else:
        papers, missing = cache.take(wanted)
        loaded = _papers(session, missing)
        cache.keep(loaded)
        papers.update(loaded)
    words, spans_of = _Decoded(_words), _Decoded(_spans)
    matches: dict[int, list[Match]] = {}
    for digest_id, paper_id, score, interests, terms, spans, learned, resembles in links:
        paper = papers.get(paper_id)
        if paper is None:  # the inner join of old: a listed paper that is gone is left out
            continue
        matches.setdefault(digest_id, []).append(
            Match(paper, score, words(interests), words(terms), spans_of(spans), learned, resembles)
        )
    return matches


class _Decoded(Generic[T]):
    """A JSON text column's values decoded once per distinct text."""

    def __init__(self, convert: Callable[[Any], T]) -> None:
        self.convert = convert
        self.seen: dict[str | None, T] = {}

    def __call__(self, text: str | None) -> T:
        found = self.seen.get(text)
        if found is None:
            found = self.seen[text] = self.convert(json.loads(text) if text else [])
        return found


def _words(value: Any) -> tuple[str, ...]:
    return tuple(str(word) for word in value)


def _spans(value: Any) -> tuple[Span, ...]:
    return tuple(Span(str(f), int(s), int(e)) for f, s, e in value)


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
    rows = session.execute(
        select(PaperRow.title, PaperRow.url, DigestPaperRow.interests)
        .join(DigestPaperRow, DigestPaperRow.paper_id == PaperRow.id)
        .where(DigestPaperRow.digest_id == digest_id)
        .order_by(DigestPaperRow.rank)
    ).all()
    return [(title, url, list(interests)) for title, url, interests in rows]


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
