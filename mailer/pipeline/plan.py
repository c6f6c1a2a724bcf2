"""The planner: decides each due subscriber's digests and writes them to the outbox before sending.

A tick claims due subscribers in chunks (locked ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
workers share the planning), works out which periods are due for each (one, or several after
downtime), matches the papers that arrived in each period's window, and writes one outbox row
per (subscriber, period) with the chunk's next due times in the same transaction —
insert-or-skip, so two planners racing (SQLite) never create two rows for one period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from sqlalchemy.orm import Session

from mailer.context import CatchUp, Context, PlanOptions
from mailer.db import digests as digest_repo
from mailer.db import papers as paper_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.digests import PlannedDigest
from mailer.db.session import SessionFactory
from mailer.db.subscribers import DueSubscriber
from mailer.delivery import OutboxFeed
from mailer.errors import ProfileError
from mailer.mail.message import make_message_id
from mailer.matching import PaperIndex, Profile, parse_profile
from mailer.matching.stored import load_stored, stored_form
from mailer.models import DigestNote, DigestStatus, Match
from mailer.pipeline.learning import Learner, store_spaces
from mailer.schedule import (
    Cadence,
    Frequency,
    Period,
    current_period,
    due_at,
    latest_due_period,
    next_due_after,
)

log = logging.getLogger(__name__)

CHUNK = 500
_NONE: frozenset[int] = frozenset()
MAX_CATCH_UP_PERIODS = 7


@dataclass(frozen=True, slots=True)
class PlanLine:
    """One subscriber's planned digest, for reports and ``send --dry-run``."""

    email: str
    period: Period
    status: DigestStatus
    note: DigestNote | None
    papers: tuple[str, ...]
    matched: int
    considered: int


@dataclass
class PlanReport:
    """What a planning pass decided."""

    queued: int = 0
    no_papers: int = 0
    no_match: int = 0
    combined: int = 0
    already_planned: int = 0
    invalid_profile: int = 0
    lines: list[PlanLine] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    """What planning one chunk of subscribers decided: what the database layer is to write."""

    digests: tuple[PlannedDigest, ...]
    emails: Mapping[int, str]  # subscriber id -> address, for dry-run lines
    next_due: Mapping[int, datetime]  # subscriber id -> when to look at them next
    compiled_profiles: Mapping[int, str]  # profiles parsed this time, to store compiled


@dataclass(frozen=True, slots=True)
class _Window:
    period: Period
    start: datetime
    end: datetime


class DigestPlanner:
    """Claims due subscribers in chunks, matches their windows' papers, writes outbox rows.

    Each chunk is one transaction: its subscribers are locked (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL) when read, and their digests and next due times are written and committed
    together. Planners in other processes pass over a locked chunk and take the next, so N
    workers each plan about 1/N and never the same subscriber; a planner that dies mid-chunk
    rolls back, and the chunk is due again for whoever looks next.
    """

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        new_message_id: Callable[[], str],
        options: PlanOptions,
        learner: Learner | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self._session_factory = session_factory
        self._chunk = chunk
        self._new_message_id = new_message_id
        self._options = options
        self._learner = learner  # None: keyword digests only
        self._indexes: dict[tuple[datetime, datetime], tuple[frozenset[int], PaperIndex]] = {}

    def run(
        self, *, now: datetime, force: bool, dry_run: bool, feed: OutboxFeed | None = None
    ) -> PlanReport:
        """Plan every due subscriber; ``force`` treats every active one as due for this period.

        Per-subscriber lines are kept only for dry runs, so memory stays flat at scale.
        ``feed`` hears of each committed chunk (a sender claims them at once) and can halt
        the run between chunks; what was committed stays in the outbox.
        """
        return self._run(now=now, force=force, dry_run=dry_run, feed=feed)

    def _run(
        self, *, now: datetime, force: bool, dry_run: bool, feed: OutboxFeed | None = None
    ) -> PlanReport:
        report = PlanReport()
        after: DueSubscriber | None = None  # the last of the previous chunk
        claim = not dry_run  # a dry run reads what is there and holds nothing
        while feed is None or not feed.halted():
            with self._session_factory() as session:
                subscribers = (
                    subscriber_repo.active_subscribers(
                        session, after.id if after else 0, self._chunk, claim=claim
                    )
                    if force
                    else subscriber_repo.due_subscribers(
                        session, now, after, self._chunk, claim=claim
                    )
                )
                if not subscribers:
                    break
                chunk = self._plan_chunk(session, subscribers, now, force, report)
                if dry_run:
                    report.lines.extend(_lines(chunk))
                else:
                    _write(session, chunk, now)
                    session.commit()
                    if feed is not None:
                        feed.added()
                after = subscribers[-1]
        return report

    def preview(self, session: Session, row: DueSubscriber, now: datetime) -> PlannedDigest:
        """The digest this subscriber would get at ``now``, without storing anything."""
        profile, _ = compiled_profile(row)
        if profile is None:
            raise ProfileError("the stored profile is invalid; fix it with `subscribers set`")
        if self._learner is not None:
            self._learner.load(session, [row.id])
        start = digest_repo.last_window_end(session, row.id) or self._first_start(row, now)
        window = _Window(_current_period(_cadence(row), now), start, now)
        sent = digest_repo.sent_paper_ids(session, row.id, self._index(session, window)[0])
        return self._decide(session, row, window, profile, sent)

    def _plan_chunk(
        self,
        session: Session,
        rows: Sequence[DueSubscriber],
        now: datetime,
        force: bool,
        report: PlanReport,
    ) -> ChunkPlan:
        ids = [row.id for row in rows]
        if self._learner is not None:  # one query for the chunk's votes, none per subscriber
            self._learner.load(session, ids)
        last_ends = digest_repo.last_window_ends(session, ids)
        windows = {row.id: self._windows(row, last_ends.get(row.id), now, force) for row in rows}
        wanted = {(row.id, w.period.key) for row in rows for w in windows[row.id]}
        existing = digest_repo.existing_periods(session, wanted)
        sent = self._sent_in_windows(session, ids, windows.values())
        plans: list[PlannedDigest] = []
        compiled: dict[int, str] = {}
        for row in rows:
            todo = [w for w in windows[row.id] if (row.id, w.period.key) not in existing]
            report.already_planned += len(windows[row.id]) - len(todo)
            already = sent.get(row.id, _NONE)
            for plan in self._plan_subscriber(session, row, todo, report, compiled, already):
                self._count(report, plan)
                plans.append(plan)
        return ChunkPlan(
            digests=tuple(plans),
            emails={row.id: row.email for row in rows},
            next_due={row.id: _next_due(_cadence(row), now) for row in rows},
            compiled_profiles=compiled,
        )

    def _sent_in_windows(
        self, session: Session, ids: Sequence[int], windows: Iterable[Sequence[_Window]]
    ) -> dict[int, frozenset[int]]:
        """Papers of the chunk's windows already sent to each subscriber: one query."""
        papers: set[int] = set()
        for window in {w for subscriber in windows for w in subscriber}:
            papers.update(self._index(session, window)[0])
        return digest_repo.sent_paper_ids_many(session, ids, papers)

    def _windows(
        self, row: DueSubscriber, last_end: datetime | None, now: datetime, force: bool
    ) -> list[_Window]:
        """The due periods of a subscriber, oldest first, each with its paper window."""
        cadence = _cadence(row)
        # Never reach back further than the catch-up limit (e.g. after a long pause).
        oldest = now - cadence.lookback * MAX_CATCH_UP_PERIODS
        start = max(last_end or self._first_start(row, now), oldest)
        if force:
            return [_Window(_current_period(cadence, now), start, now)]
        periods = _due_periods(cadence, row.next_due_at, now)
        if self._options.catch_up is CatchUp.COMBINED or len(periods) == 1:
            return [_Window(p, start, now) for p in periods]
        windows = []
        for period in periods:
            end = now if period == periods[-1] else max(start, due_at(cadence, period))
            windows.append(_Window(period, start, end))
            start = end
        return windows

    def _first_start(self, row: DueSubscriber, now: datetime) -> datetime:
        """Where a first digest's window starts: at confirmation, at most one period back."""
        lookback_start = now - _cadence(row).lookback
        if self._options.first_digest_backfill:
            return lookback_start
        joined = row.confirmed_at or row.created_at
        return max(joined, lookback_start)

    def _plan_subscriber(
        self,
        session: Session,
        row: DueSubscriber,
        windows: Sequence[_Window],
        report: PlanReport,
        compiled: dict[int, str],
        already: frozenset[int],
    ) -> list[PlannedDigest]:
        if not windows:
            return []
        profile, fresh = compiled_profile(row)
        if fresh is not None:
            compiled[row.id] = fresh
        if profile is None:
            log.error("stored profile is invalid subscriber=%d", row.id)
            report.invalid_profile += 1
            return []
        combined = self._options.catch_up is CatchUp.COMBINED and len(windows) > 1
        if combined:  # earlier periods are recorded as folded into the latest digest
            *earlier, last = windows
            folded = [self._folded(row, w) for w in earlier]
            return [*folded, self._decide_fresh(session, row, last, profile, already)]
        plans: list[PlannedDigest] = []
        for window in windows:
            plans.append(self._decide_fresh(session, row, window, profile, already, plans))
        return plans

    def _decide_fresh(
        self,
        session: Session,
        row: DueSubscriber,
        window: _Window,
        profile: Profile,
        already: frozenset[int],
        earlier: Sequence[PlannedDigest] = (),
    ) -> PlannedDigest:
        """Decide one window, excluding papers already sent (``already``, loaded for the
        chunk) or planned in this pass."""
        paper_ids = self._index(session, window)[0]
        sent = set(already & paper_ids)
        sent.update(m.paper.id for plan in earlier for m in plan.matches if m.paper.id is not None)
        return self._decide(session, row, window, profile, frozenset(sent))

    def _decide(
        self,
        session: Session,
        row: DueSubscriber,
        window: _Window,
        profile: Profile,
        sent: frozenset[int],
    ) -> PlannedDigest:
        paper_ids, index = self._index(session, window)
        total = 0
        matches: tuple[Match, ...] = ()
        if paper_ids:  # rank everything, explain only what is listed
            total, matches = self._rank(session, row.id, index, profile, sent)
        status, note = DigestStatus.PENDING, None
        if not paper_ids:
            status, note = DigestStatus.SKIPPED, DigestNote.NO_PAPERS
        elif not total and not matches:  # a voter may get "You may also like" papers alone
            status, note = DigestStatus.SKIPPED, DigestNote.NO_MATCH
        return PlannedDigest(
            subscriber_id=row.id,
            period=window.period,
            status=status,
            note=note,
            message_id=self._new_message_id(),
            matches=matches,
            matched_count=total,
            considered_count=len(paper_ids),
            window_start=window.start,
            window_end=window.end,
            profile=row.profile,  # what a retry re-explains from, whatever the reader edits
        )

    def _rank(
        self,
        session: Session,
        subscriber_id: int,
        index: PaperIndex,
        profile: Profile,
        sent: frozenset[int],
    ) -> tuple[int, tuple[Match, ...]]:
        """The keyword digest, or for a reader with votes the learned one (the one seam)."""
        limit = self._options.max_papers
        if self._learner is not None and self._learner.has_examples(subscriber_id):
            learned = self._learner.digest(
                session, subscriber_id, index, profile, exclude=sent, limit=limit
            )
            if learned is not None:
                return learned.total, learned.matches
        ranked = index.digest(profile, exclude=sent, limit=limit)
        return ranked.total, ranked.matches

    def _folded(self, row: DueSubscriber, window: _Window) -> PlannedDigest:
        return PlannedDigest(
            subscriber_id=row.id,
            period=window.period,
            status=DigestStatus.SKIPPED,
            note=DigestNote.COMBINED,
            message_id=self._new_message_id(),
            matches=(),
            matched_count=0,
            considered_count=0,
            window_start=window.start,
            window_end=window.start,
        )

    def _index(self, session: Session, window: _Window) -> tuple[frozenset[int], PaperIndex]:
        """The papers of a window, indexed once per distinct window (most share one)."""
        key = (window.start, window.end)
        cached = self._indexes.get(key)
        if cached is None:
            papers = paper_repo.papers_first_seen(session, window.start, window.end)
            cached = (frozenset(p.id for p in papers if p.id is not None), PaperIndex(papers))
            self._indexes[key] = cached
        return cached

    @staticmethod
    def _count(report: PlanReport, plan: PlannedDigest) -> None:
        if plan.status is DigestStatus.PENDING:
            report.queued += 1
        elif plan.note is DigestNote.NO_PAPERS:
            report.no_papers += 1
        elif plan.note is DigestNote.COMBINED:
            report.combined += 1
        else:
            report.no_match += 1


def compiled_profile(row: DueSubscriber) -> tuple[Profile | None, str | None]:
    """The subscriber's parsed profile (None if invalid), and its compiled form when fresh.

    The stored compiled form is used when it is for the current text; otherwise the text is
    parsed and the second value is the compiled form to store, so each profile is parsed
    once, not on every run.
    """
    stored = load_stored(row.profile_compiled, row.profile)
    if stored is not None:
        return stored, None
    try:
        profile = parse_profile(row.profile)
    except ProfileError:
        return None, None
    return profile, stored_form(row.profile, profile)


def _cadence(row: DueSubscriber) -> Cadence:
    return _cadence_of(row.frequency, row.send_time, row.timezone, row.weekday)


# The schedule's pure functions, memoised: a run asks them the same few questions (one per
# distinct cadence) for every subscriber, and the answers cost a time-zone conversion each.
@lru_cache(maxsize=4096)
def _cadence_of(frequency: str, send_time: str, timezone: str, weekday: int) -> Cadence:
    return Cadence(Frequency(frequency), send_time, timezone, weekday)


@lru_cache(maxsize=4096)
def _current_period(cadence: Cadence, now: datetime) -> Period:
    return current_period(cadence, now)


@lru_cache(maxsize=4096)
def _next_due(cadence: Cadence, now: datetime) -> datetime:
    return next_due_after(cadence, now)


def _due_periods(cadence: Cadence, next_due: datetime | None, now: datetime) -> list[Period]:
    """Periods from the one ``next_due`` belongs to up to the latest due, oldest first (capped)."""
    latest = latest_due_period(cadence, now)
    first = current_period(cadence, next_due) if next_due is not None else latest
    if first.frequency is not latest.frequency or first > latest:
        first = latest  # the cadence changed under us: just the latest
    periods = [latest]
    while periods[-1] > first and len(periods) < MAX_CATCH_UP_PERIODS:
        periods.append(periods[-1].shifted(-1))
    return periods[::-1]


def _write(session: Session, chunk: ChunkPlan, now: datetime) -> None:
    """Store what a chunk's planning decided (the caller commits)."""
    digest_repo.insert_digests(session, chunk.digests, now)
    subscriber_repo.set_next_due(session, chunk.next_due)
    subscriber_repo.store_compiled_profiles(session, chunk.compiled_profiles)


def _lines(chunk: ChunkPlan) -> list[PlanLine]:
    return [_line(plan, chunk.emails[plan.subscriber_id]) for plan in chunk.digests]


def _line(plan: PlannedDigest, email: str) -> PlanLine:
    return PlanLine(
        email=email,
        period=plan.period,
        status=plan.status,
        note=plan.note,
        papers=tuple(m.paper.title for m in plan.matches),
        matched=plan.matched_count,
        considered=plan.considered_count,
    )


def planner(ctx: Context) -> DigestPlanner:
    """A planner configured from the context."""
    return DigestPlanner(
        ctx.session_factory,
        new_message_id=lambda: make_message_id(ctx.sender),
        options=ctx.plan_options,
        learner=Learner(store_spaces(ctx.relevance_model)),
        chunk=CHUNK,  # read when called, so a test may plan in smaller chunks
    )


def plan(
    ctx: Context,
    *,
    force: bool = False,
    dry_run: bool = False,
    at: datetime | None = None,
    feed: OutboxFeed | None = None,
) -> PlanReport:
    """Write outbox rows for every due subscriber (or only report them when ``dry_run``)."""
    return planner(ctx).run(now=at or ctx.clock(), force=force, dry_run=dry_run, feed=feed)
