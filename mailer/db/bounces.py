"""Bounce reports in SQL: find what a report is about, apply it, and count reports per day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
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
