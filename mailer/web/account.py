"""A subscriber's own changes from the preferences page: choices, pause and resume.

These are small private helpers until ``mailer.subscriptions`` offers update/pause/resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.db import subscribers as repo
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.errors import NotFound
from mailer.models import DigestStatus, Frequency, Subscriber, SubscriberStatus
from mailer.pipeline import Context
from mailer.schedule import first_due, next_due_after
from mailer.subscriptions import cadence_of
from mailer.web.forms import Choices


@dataclass(frozen=True, slots=True)
class SentDigest:
    """A digest the subscriber received, for the "recent digests" list."""

    id: int
    period: str
    papers: int
    sent_at: datetime | None


def load(ctx: Context, subscriber_id: int) -> Subscriber:
    """The subscriber a link names; NotFound when it was removed."""
    with ctx.session_factory() as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None:
            raise NotFound("this subscription no longer exists")
        return repo.to_subscriber(row)


def recent_digests(ctx: Context, subscriber_id: int, limit: int = 5) -> list[SentDigest]:
    """The subscriber's latest sent digests, newest first."""
    query = (
        select(DigestRow)
        .where(
            DigestRow.subscriber_id == subscriber_id,
            DigestRow.status == DigestStatus.SENT.value,
        )
        .order_by(DigestRow.sent_at.desc(), DigestRow.id.desc())
        .limit(limit)
    )
    with ctx.session_factory() as session:
        return [
            SentDigest(r.id, r.period, r.paper_count, r.sent_at) for r in session.scalars(query)
        ]


def _locked(session: Session, subscriber_id: int) -> SubscriberRow:
    row = session.get(SubscriberRow, subscriber_id, with_for_update=True)
    if row is None:
        raise NotFound("this subscription no longer exists")
    return row


def update_choices(ctx: Context, subscriber_id: int, choices: Choices, now: datetime) -> Subscriber:
    """Store validated choices; an active subscriber's next digest follows the new schedule.

    Same frequency: this period's digest stays due (one already sent is never sent twice,
    outbox rows are unique per period). New frequency: the next period of the new rhythm,
    so switching to weekly does not send a weekly digest right after today's daily one.
    """
    with ctx.session_factory.begin() as session:
        row = _locked(session, subscriber_id)
        frequency_changed = row.frequency != choices.frequency
        row.profile = choices.profile.strip()
        row.frequency = Frequency(choices.frequency).value
        row.weekday = int(choices.weekday) if choices.weekday.isdigit() else row.weekday
        row.send_time = choices.send_time
        row.timezone = choices.timezone
        if row.status == SubscriberStatus.ACTIVE.value:
            cadence = cadence_of(row)
            row.next_due_at = (
                next_due_after(cadence, now) if frequency_changed else first_due(cadence, now)
            )
        return repo.to_subscriber(row)


def set_paused(ctx: Context, subscriber_id: int, paused: bool, now: datetime) -> Subscriber:
    """Pause or resume; resuming picks up at the next send time, without a backlog burst."""
    with ctx.session_factory.begin() as session:
        row = _locked(session, subscriber_id)
        if paused and row.status == SubscriberStatus.ACTIVE.value:
            row.status = SubscriberStatus.PAUSED.value
            row.next_due_at = None
        elif not paused and row.status == SubscriberStatus.PAUSED.value:
            row.status = SubscriberStatus.ACTIVE.value
            row.next_due_at = next_due_after(cadence_of(row), now)
        return repo.to_subscriber(row)


def unsubscribe(ctx: Context, subscriber_id: int, now: datetime) -> None:
    """Stop every digest at once; idempotent, and quiet about removed subscribers."""
    with ctx.session_factory.begin() as session:
        row = session.get(SubscriberRow, subscriber_id, with_for_update=True)
        if row is None or row.status == SubscriberStatus.UNSUBSCRIBED.value:
            return
        row.status = SubscriberStatus.UNSUBSCRIBED.value
        row.unsubscribed_at = now
        row.next_due_at = None
