"""Apply a bounce or complaint that came back by mail, once it is proven.

A report changes a subscriber only when it carries a tag we signed (the per-digest envelope
sender, ``mail.verp``): a Message-ID or an address in a report proves nothing, since anyone
can write them into a mail. What such a report claims is only logged.

- hard bounce: the digest row records it; ``MAILER_BOUNCE_LIMIT`` of them and the subscriber
  is ``bounced`` and the address suppressed;
- soft bounce: counted, unless a later digest was delivered since (the count restarts at every
  delivery, see ``db.outbox.record``); never acted on;
- complaint: unsubscribed and suppressed at once, never counted as a bounce;
- policy (the message was refused, not the mailbox): recorded, changes no one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.context import Context
from mailer.db import bounces as repo
from mailer.db.bounces import ReportRecord, Target
from mailer.mail.report_types import Report, ReportKind
from mailer.models import SubscriberStatus, SuppressionReason
from mailer.subscribers.suppression import stop, suppress_subscriber


class Outcome(StrEnum):
    """What became of one report."""

    HARD = "hard"
    SOFT = "soft"
    POLICY = "policy"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"  # ignored
    UNKNOWN = "unknown"  # ignored
    UNPROVEN = "unproven"  # a bounce or complaint without a valid signed tag: ignored
    UNMATCHED = "unmatched"  # a valid tag, but the digest is gone (erased since)
    DUPLICATE = "duplicate"  # already applied (the same message, or the same digest)


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one report, with what it was about (ids only: they are not personal)."""

    outcome: Outcome
    digest_id: int | None = None
    subscriber_id: int | None = None
    became: str | None = None  # the subscriber's new status, when it changed
    claims: str = ""  # what an unproven report said it was about


def apply_report(
    ctx: Context, report: Report, key: str, now: datetime, bounce_limit: int
) -> Applied:
    """Apply one classified report; ``key`` identifies the message (a digest of its bytes)."""
    if report.kind in (ReportKind.AUTO_REPLY, ReportKind.UNKNOWN):
        return Applied(Outcome(report.kind.value))
    named = ctx.return_path.digests_named(report.evidence) if ctx.return_path else []
    try:
        with ctx.session_factory.begin() as session:
            if not named:
                return Applied(Outcome.UNPROVEN, claims=_claims(session, report))
            target = repo.digest_target(session, named)
            if target is None:
                return Applied(Outcome.UNMATCHED, digest_id=named[0])
            if repo.seen(session, key):
                return _duplicate(target)
            return _apply(session, target, report, key, now, bounce_limit)
    except IntegrityError:  # another worker applied this very message at the same moment
        return Applied(Outcome.DUPLICATE)


def _apply(
    session: Session, target: Target, report: Report, key: str, now: datetime, limit: int
) -> Applied:
    kind = report.kind.value
    if repo.reported(session, target.digest_id, [kind]):
        return _duplicate(target)
    record = ReportRecord(key, kind, report.status, report.code, report.detail)
    if report.kind is ReportKind.HARD:
        return _hard(session, target, record, now, limit)
    if report.kind is ReportKind.SOFT:
        return _soft(session, target, record, now)
    if report.kind is ReportKind.COMPLAINT:
        return _complaint(session, target, record, now)
    repo.record(session, _counted(record, False), target, now)  # policy: about the message
    return _applied(Outcome.POLICY, target)


def _hard(
    session: Session, target: Target, record: ReportRecord, now: datetime, limit: int
) -> Applied:
    repo.record(session, record, target, now)
    repo.mark_digest_bounced(session, target, record)
    row = repo.subscriber_row(session, target)
    row.hard_bounces += 1
    row.last_bounce_at, row.last_bounce_reply = now, _reply(record)
    if row.hard_bounces < limit or not stop(row, SubscriberStatus.BOUNCED, now):
        return _applied(Outcome.HARD, target)
    suppress_subscriber(session, row, SuppressionReason.HARD_BOUNCE, now, _reply(record))
    return _applied(Outcome.HARD, target, became=SubscriberStatus.BOUNCED.value)


def _soft(session: Session, target: Target, record: ReportRecord, now: datetime) -> Applied:
    # A digest delivered after this one says the trouble is over: recorded, not counted.
    counted = not repo.delivered_since(session, target)
    repo.record(session, _counted(record, counted), target, now)
    if counted:
        row = repo.subscriber_row(session, target)
        row.soft_bounces += 1
        row.last_bounce_at, row.last_bounce_reply = now, _reply(record)
    return _applied(Outcome.SOFT, target)


def _complaint(session: Session, target: Target, record: ReportRecord, now: datetime) -> Applied:
    repo.record(session, _counted(record, False), target, now)
    row = repo.subscriber_row(session, target)
    was_mailed = stop(row, SubscriberStatus.UNSUBSCRIBED, now)
    suppress_subscriber(session, row, SuppressionReason.COMPLAINT, now, record.detail)
    became = SubscriberStatus.UNSUBSCRIBED.value if was_mailed else None
    return _applied(Outcome.COMPLAINT, target, became=became)


def _counted(record: ReportRecord, counted: bool) -> ReportRecord:
    return ReportRecord(record.key, record.kind, record.status, record.code, record.detail, counted)


def _reply(record: ReportRecord) -> str:
    return f"{record.status or ''} {record.detail}".strip()[: repo.REPLY_LIMIT]


def _applied(outcome: Outcome, target: Target, became: str | None = None) -> Applied:
    return Applied(outcome, target.digest_id, target.subscriber_id, became)


def _duplicate(target: Target) -> Applied:
    return Applied(Outcome.DUPLICATE, target.digest_id, target.subscriber_id)


def _claims(session: Session, report: Report) -> str:
    """What an unproven report says it is about, for the log (ids, never addresses)."""
    by_id = repo.targets_by_message_id(session, report.message_ids)
    if by_id:
        return f"the Message-ID of digest {by_id[0].digest_id}"
    subscribers = repo.subscriber_ids_by_email(session, report.recipients)
    if subscribers:
        return f"the address of subscriber {subscribers[0]}"
    return "nothing we sent"
