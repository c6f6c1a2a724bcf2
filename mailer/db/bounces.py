"""Bounce reports in SQL: find what a report is about, apply it, and count reports per day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.orm import Session

from mailer.db.tables import BounceReportRow, DigestRow, SubscriberRow
from mailer.models import DigestNote, DigestStatus, SubscriberStatus

REPLY_LIMIT = 1000

# Statuses a bounce or a complaint takes a subscriber out of.
MAILED = (
    SubscriberStatus.ACTIVE.value,
    SubscriberStatus.PAUSED.value,
    SubscriberStatus.PENDING.value,
)


@dataclass(frozen=True, slots=True)
class Target:
    """The digest a report is about, and its subscriber."""

    digest_id: int
    subscriber_id: int
    email: str
    message_id: str
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReportRecord:
    """What is stored of an applied report."""

    key: str
    kind: str
    status: str | None
    code: int | None
    detail: str
    counted: bool = True


def _targets(session: Session, *where: object) -> list[Target]:
    query = (
        select(
            DigestRow.id,
            DigestRow.subscriber_id,
            SubscriberRow.email,
            DigestRow.message_id,
            DigestRow.sent_at,
        )
        .join(SubscriberRow, SubscriberRow.id == DigestRow.subscriber_id)
        .where(*where)  # type: ignore[arg-type]
        .order_by(DigestRow.id)
    )
    return [Target(*row) for row in session.execute(query)]


def digest_target(session: Session, digest_ids: Sequence[int]) -> Target | None:
    """The first of these digests that still exists (a signed tag names it)."""
    if not digest_ids:
        return None
    found = {t.digest_id: t for t in _targets(session, DigestRow.id.in_(digest_ids))}
    return next((found[d] for d in digest_ids if d in found), None)


def targets_by_message_id(session: Session, message_ids: Sequence[str]) -> list[Target]:
    """The digests that went out with these Message-IDs (what a report claims, unproven)."""
    wanted = [m for m in message_ids if len(m) <= 255]
    if not wanted:
        return []
    return _targets(session, DigestRow.message_id.in_(wanted))


def subscriber_ids_by_email(session: Session, emails: Sequence[str]) -> list[int]:
    """The subscribers with these addresses (what a report claims, unproven)."""
    wanted = [e for e in emails if len(e) <= 320]
    if not wanted:
        return []
    query = select(SubscriberRow.id).where(SubscriberRow.email.in_(wanted))
    return list(session.scalars(query))


def seen(session: Session, key: str) -> bool:
    """Whether this very message was applied before (read twice after a crash)."""
    return session.scalar(select(exists().where(BounceReportRow.key == key))) or False


def reported(session: Session, digest_id: int, kinds: Sequence[str]) -> bool:
    """Whether a report of one of these kinds was already applied to this digest."""
    query = exists().where(BounceReportRow.digest_id == digest_id, BounceReportRow.kind.in_(kinds))
    return session.scalar(select(query)) or False


def delivered_since(session: Session, target: Target) -> bool:
    """Whether a later digest to the same subscriber was accepted (nothing bounced it yet)."""
    if target.sent_at is None:
        return False
    later = exists().where(
        DigestRow.subscriber_id == target.subscriber_id,
        DigestRow.status == DigestStatus.SENT.value,
        DigestRow.sent_at > target.sent_at,
    )
    return session.scalar(select(later)) or False


def record(session: Session, report: ReportRecord, target: Target, now: datetime) -> None:
    """Store an applied report."""
    session.add(
        BounceReportRow(
            key=report.key,
            kind=report.kind,
            received_at=now,
            subscriber_id=target.subscriber_id,
            digest_id=target.digest_id,
            status=report.status,
            code=report.code,
            detail=report.detail[:REPLY_LIMIT] or None,
            counted=report.counted,
        )
    )
    session.flush()


def subscriber_row(session: Session, target: Target) -> SubscriberRow:
    """The subscriber a target names, locked for the update."""
    row = session.get(SubscriberRow, target.subscriber_id, with_for_update=True)
    assert row is not None  # the target was read in this transaction
    return row


def mark_digest_bounced(session: Session, target: Target, report: ReportRecord) -> None:
    """The digest row records a hard bounce that came back later by mail."""
    row = session.get(DigestRow, target.digest_id, with_for_update=True)
    if row is None or row.status not in (DigestStatus.SENT.value, DigestStatus.BOUNCED.value):
        return
    row.status = DigestStatus.BOUNCED.value
    row.note = DigestNote.HARD_BOUNCE.value
    row.last_code = report.code
    row.last_reply = f"bounced later: {report.status or ''} {report.detail}".strip()[:REPLY_LIMIT]


@dataclass(frozen=True, slots=True)
class BounceDay:
    """One UTC day: digests sent, and the reports about them that arrived that day."""

    day: date
    sent: int
    hard: int
    soft: int
    complaints: int

    @property
    def bounce_rate(self) -> float | None:
        """Hard and soft bounces per digest sent that day (None when none was sent)."""
        return (self.hard + self.soft) / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        """Complaints per digest sent that day; mailbox providers want it under 0.3 %."""
        return self.complaints / self.sent if self.sent else None


def _utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, the same on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)  # SQLite keeps UTC timestamps as text


def bounce_days(session: Session, since: date) -> list[BounceDay]:
    """Per UTC day from ``since``: digests sent, and hard, soft and complaint reports received."""
    start = datetime.combine(since, datetime.min.time(), tzinfo=UTC)
    sent_day = _utc_day(session, DigestRow.sent_at)
    sent = session.execute(
        select(sent_day, func.count())
        .where(
            DigestRow.sent_at >= start,
            DigestRow.status.in_([DigestStatus.SENT.value, DigestStatus.BOUNCED.value]),
        )
        .group_by(sent_day)
    ).all()
    report_day = _utc_day(session, BounceReportRow.received_at)
    reports = session.execute(
        select(report_day, BounceReportRow.kind, func.count())
        .where(BounceReportRow.received_at >= start)
        .group_by(report_day, BounceReportRow.kind)
    ).all()
    counts: dict[date, dict[str, int]] = {}
    for day, count in sent:
        counts.setdefault(_as_date(day), {})["sent"] = int(count)
    for day, kind, count in reports:
        counts.setdefault(_as_date(day), {})[str(kind)] = int(count)
    return [
        BounceDay(day, c.get("sent", 0), c.get("hard", 0), c.get("soft", 0), c.get("complaint", 0))
        for day, c in sorted(counts.items())
    ]


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def reports_about(session: Session, digest_ids: Sequence[int]) -> list[BounceReportRow]:
    """The applied reports about these digests, oldest first (for ``mailer why``)."""
    if not digest_ids:
        return []
    query = (
        select(BounceReportRow)
        .where(BounceReportRow.digest_id.in_(digest_ids))
        .order_by(BounceReportRow.received_at, BounceReportRow.id)
    )
    return list(session.scalars(query))
