"""A subscriber's own changes from the preferences page, through ``mailer.subscribers.manage``."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from mailer.context import Context
from mailer.db import digests as digest_repo
from mailer.db import subscribers as repo
from mailer.errors import NotFound
from mailer.models import Subscriber
from mailer.subscribers import manage as subscriptions
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
        row = repo.get_row(session, subscriber_id)
        if row is None:
            raise NotFound("this subscription no longer exists")
        return repo.to_subscriber(row)


def recent_digests(ctx: Context, subscriber_id: int, limit: int = 5) -> list[SentDigest]:
    """The subscriber's latest sent digests, newest first."""
    with ctx.session_factory() as session:
        rows = digest_repo.sent_digests(session, subscriber_id, limit)
    return [SentDigest(r.id, r.period, r.paper_count, r.sent_at) for r in rows]


def update_choices(ctx: Context, subscriber_id: int, choices: Choices, now: datetime) -> Subscriber:
    """Store validated choices; an active subscriber's next digest follows the new schedule."""
    changes = subscriptions.Changes(
        profile=choices.profile,
        frequency=choices.frequency,
        weekday=choices.weekday,
        send_time=choices.send_time,
        timezone=choices.timezone,
    )
    return subscriptions.update(ctx.session_factory, subscriber_id, changes, now)


def set_paused(ctx: Context, subscriber_id: int, paused: bool, now: datetime) -> Subscriber:
    """Pause or resume."""
    change = subscriptions.pause if paused else subscriptions.resume
    return change(ctx.session_factory, subscriber_id, now)


def unsubscribe(ctx: Context, subscriber_id: int, now: datetime) -> None:
    """Stop every digest at once; idempotent, and quiet about removed subscribers."""
    with suppress(NotFound):  # erased already: there is nothing left to unsubscribe
        subscriptions.unsubscribe(ctx.session_factory, subscriber_id, now)
