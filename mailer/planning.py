"""The planner: decides each due subscriber's digest and writes it to the outbox before sending."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from mailer.db import digests as digest_repo
from mailer.db import papers as paper_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.digests import PlannedDigest
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.errors import ProfileError
from mailer.matching import PaperIndex, Profile, parse_profile
from mailer.models import DigestStatus
from mailer.schedule import current_period, latest_due_period, next_due_after
from mailer.subscriptions import cadence_of

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass(frozen=True, slots=True)
class PlanLine:
    """One subscriber's planned digest, for reports and ``send --dry-run``."""

    email: str
    period: str
    status: DigestStatus
    note: str | None
    papers: tuple[str, ...]
    matched: int
    considered: int


@dataclass
class PlanReport:
    """What a planning pass decided."""

    queued: int = 0
    no_papers: int = 0
    no_match: int = 0
    already_planned: int = 0
    invalid_profile: int = 0
    lines: list[PlanLine] = field(default_factory=list)


class DigestPlanner:
    """Streams due subscribers in chunks, matches their window's papers, writes outbox rows."""

    def __init__(
        self,
        session_factory: SessionFactory,
        *,
        max_papers: int,
        new_message_id: Callable[[], str],
    ) -> None:
        self._session_factory = session_factory
        self._max_papers = max_papers
        self._new_message_id = new_message_id
        self._indexes: dict[datetime, tuple[frozenset[int], PaperIndex]] = {}
        self._profiles: dict[str, Profile] = {}
        self._collect = False

    def run(self, *, now: datetime, force: bool, dry_run: bool) -> PlanReport:
        """Plan every due subscriber; ``force`` treats every active one as due now.

        Per-subscriber lines are kept only for dry runs, so memory stays flat at scale.
        """
        report = PlanReport()
        self._collect = dry_run
        after_id = 0
        while True:
            with self._session_factory() as session:
                if force:
                    rows = subscriber_repo.active_rows(session, after_id, CHUNK)
                else:
                    rows = subscriber_repo.due_rows(session, now, after_id, CHUNK)
                if not rows:
                    break
                for row in rows:
                    self._plan_one(session, row, now, force, dry_run, report)
                after_id = rows[-1].id
                if dry_run:
                    session.rollback()
                else:
                    session.commit()
        return report

    def _plan_one(
        self,
        session: Session,
        row: SubscriberRow,
        now: datetime,
        force: bool,
        dry_run: bool,
        report: PlanReport,
    ) -> None:
        cadence = cadence_of(row)
        period = current_period(cadence, now) if force else latest_due_period(cadence, now)
        row.next_due_at = next_due_after(cadence, now)
        if digest_repo.has_digest(session, row.id, period):
            report.already_planned += 1
            return
        profile = self._profile(row.profile)
        if profile is None:
            log.error("stored profile is invalid subscriber=%d", row.id)
            report.invalid_profile += 1
            return
        plan = self._decide(session, row, period, profile, now)
        self._count(report, plan)
        if self._collect:
            report.lines.append(_line(plan, row.email))
        if not dry_run:
            digest_repo.insert_digest(session, plan, now)

    def preview(self, session: Session, row: SubscriberRow, now: datetime) -> PlannedDigest:
        """The digest this subscriber would get at ``now``, without storing anything."""
        profile = self._profile(row.profile)
        if profile is None:
            raise ProfileError("the stored profile is invalid; fix it with `subscribers set`")
        return self._decide(session, row, current_period(cadence_of(row), now), profile, now)

    def _decide(
        self, session: Session, row: SubscriberRow, period: str, profile: Profile, now: datetime
    ) -> PlannedDigest:
        start = digest_repo.last_window_end(session, row.id)
        if start is None:
            start = now - cadence_of(row).lookback
        paper_ids, index = self._index(session, start, now)
        considered = len(paper_ids)
        matches = []
        if considered:
            sent = digest_repo.sent_paper_ids(session, row.id, paper_ids)
            matches = index.match(profile, exclude=sent)
        status, note = DigestStatus.PENDING, None
        if not considered:
            status, note = DigestStatus.SKIPPED, "no_papers"
        elif not matches:
            status, note = DigestStatus.SKIPPED, "no_match"
        return PlannedDigest(
            subscriber_id=row.id,
            period=period,
            status=status,
            note=note,
            message_id=self._new_message_id(),
            matches=matches[: self._max_papers],
            matched_count=len(matches),
            considered_count=considered,
            window_start=start,
            window_end=now,
        )

    def _index(
        self, session: Session, start: datetime, end: datetime
    ) -> tuple[frozenset[int], PaperIndex]:
        """The papers of a window, indexed once per distinct window start."""
        cached = self._indexes.get(start)
        if cached is None:
            papers = paper_repo.papers_first_seen(session, start, end)
            cached = (frozenset(p.id for p in papers if p.id is not None), PaperIndex(papers))
            self._indexes[start] = cached
        return cached

    def _profile(self, text: str) -> Profile | None:
        profile = self._profiles.get(text)
        if profile is None:
            try:
                profile = parse_profile(text)
            except ProfileError:
                return None
            self._profiles[text] = profile
        return profile

    @staticmethod
    def _count(report: PlanReport, plan: PlannedDigest) -> None:
        if plan.status is DigestStatus.PENDING:
            report.queued += 1
        elif plan.note == "no_papers":
            report.no_papers += 1
        else:
            report.no_match += 1


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
