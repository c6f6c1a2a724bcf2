"""Double opt-in: validate a signup, keep one pending row per address, mail and check the link.

The web form calls ``request`` (in the request), then ``send_confirmation`` (in a background
task, so a slow SMTP server never holds up the page), and ``confirm`` when the link is opened.
The same code answers for a new, pending or active address, so the form reveals nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailer.addresses import normalise_email
from mailer.context import Context
from mailer.db import subscribers as repo
from mailer.db import suppressions as suppression_repo
from mailer.db.tables import SubscriberRow
from mailer.delivery import Transport
from mailer.errors import InputError, MailerError, TokenError
from mailer.mail.message import build_message, make_message_id
from mailer.models import Links, Subscriber, SubscriberStatus
from mailer.subscribers.manage import SubscriberInput, activate_row, validate
from mailer.tokens import MAX_AGE_SECONDS, Purpose

log = logging.getLogger(__name__)

CONFIRM_INTERVAL = timedelta(minutes=10)
"""At most one confirmation email per address in this interval."""

CONFIRM_VALID_HOURS = (MAX_AGE_SECONDS[Purpose.CONFIRM] or 0) // 3600

TransportFactory = Callable[[], Transport]

# Statuses whose stored choices a new signup may overwrite: nobody is getting digests yet.
_REPLACEABLE = {
    SubscriberStatus.PENDING.value,
    SubscriberStatus.UNSUBSCRIBED.value,
    SubscriberStatus.BOUNCED.value,
}


class Throttled(InputError):
    """Too soon for another confirmation email to this address (the web form says nothing)."""

    def __init__(self, message: str, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    """A confirmation email that is due to be sent to ``email``."""

    subscriber_id: int
    email: str


@dataclass(frozen=True, slots=True)
class Confirmed:
    """The outcome of opening a confirmation link."""

    subscriber: Subscriber
    newly_active: bool


def request(ctx: Context, raw: SubscriberInput, now: datetime) -> PendingConfirmation | None:
    """Validate a signup and record it; InputError for bad input, Throttled when too soon.

    A new, pending, unsubscribed or bounced address becomes pending with the new choices;
    an active or paused one keeps its settings (a stranger must not change them) and its
    owner gets a link that leads to the preferences page. A suppressed address (a hard
    bounce, a complaint, the operator's) gets nothing at all: None, and the caller answers
    as for any other address.
    """
    subscriber = validate(raw, ctx.defaults, now)
    try:
        with ctx.session_factory.begin() as session:
            if _suppressed(session, subscriber.email):
                return None
            row = repo.get_row_by_email(session, subscriber.email)
            if row is None:
                new_id = repo.insert_subscriber(session, subscriber, None)
                row = session.get(SubscriberRow, new_id)
                assert row is not None
            else:
                _check_interval(row, now)
                if row.status in _REPLACEABLE:
                    _replace_choices(row, subscriber)
            row.confirmation_sent_at = now
            return PendingConfirmation(row.id, row.email)
    except IntegrityError:
        # Two signups for one new address at once: the other one sends the email.
        raise Throttled("a confirmation email was just sent to this address", 600) from None


def resend(ctx: Context, email: str, now: datetime) -> PendingConfirmation | None:
    """A new link for a pending address (None for any other: the caller says the same)."""
    address = normalise_email(email)
    with ctx.session_factory.begin() as session:
        row = repo.get_row_by_email(session, address)
        if row is None or row.status != SubscriberStatus.PENDING.value:
            return None
        _check_interval(row, now)
        row.confirmation_sent_at = now
        return PendingConfirmation(row.id, row.email)


def _suppressed(session: Session, email: str) -> bool:
    found = suppression_repo.find(session, email)
    return found is not None and found.reason.blocks_mail


def _check_interval(row: SubscriberRow, now: datetime) -> None:
    last = row.confirmation_sent_at
    if last is not None and now - last < CONFIRM_INTERVAL:
        wait = int((CONFIRM_INTERVAL - (now - last)).total_seconds()) + 1
        minutes = max(1, -(-wait // 60))
        raise Throttled(
            f"a confirmation email was sent recently; try again in {minutes} minutes", wait
        )


def _replace_choices(row: SubscriberRow, subscriber: Subscriber) -> None:
    row.status = SubscriberStatus.PENDING.value
    row.profile = subscriber.profile
    row.frequency = subscriber.frequency.value
    row.send_time = subscriber.send_time
    row.timezone = subscriber.timezone
    row.weekday = subscriber.weekday
    row.next_due_at = None


def confirmation_message(ctx: Context, pending: PendingConfirmation, now: datetime) -> EmailMessage:
    """The confirmation email: a signed 48-hour link and no user-entered text at all."""
    url = ctx.link(Purpose.CONFIRM, pending.subscriber_id)
    rendered = ctx.renderer.confirmation(url, valid_hours=CONFIRM_VALID_HOURS)
    return build_message(
        rendered,
        sender=ctx.sender,
        recipient=pending.email,
        message_id=make_message_id(ctx.sender),
        links=None,
        list_id=ctx.list_id,
        when=now,
        auto_submitted=True,
    )


def welcome_message(ctx: Context, subscriber: Subscriber, now: datetime) -> EmailMessage:
    """The email sent once a subscription is confirmed: what comes when, and the way out."""
    preferences = ctx.link(Purpose.PREFERENCES, subscriber.id)
    links = Links(
        unsubscribe=ctx.link(Purpose.UNSUBSCRIBE, subscriber.id),
        preferences=preferences,
        view_online=preferences,
        unsubscribe_mailto=ctx.unsubscribe_mailto,
    )
    return build_message(
        ctx.renderer.welcome(subscriber, links),
        sender=ctx.sender,
        recipient=subscriber.email,
        message_id=make_message_id(ctx.sender),
        links=links,
        list_id=ctx.list_id,
        when=now,
    )


async def deliver(factory: TransportFactory, message: EmailMessage, recipient: str) -> bool:
    """Hand one message to a fresh transport; failures are logged, never raised."""
    try:
        async with factory() as transport:
            await transport.send(message, recipient)
    except (MailerError, OSError) as exc:
        # The address is not logged: it is personal data and the reason is what matters.
        log.warning("transactional mail not sent: %s", exc)
        return False
    return True


async def send_confirmation(
    ctx: Context, factory: TransportFactory, pending: PendingConfirmation
) -> bool:
    """Build and send the confirmation email; True when the server accepted it."""
    try:
        message = confirmation_message(ctx, pending, ctx.clock())
    except MailerError as exc:
        # Not the message: a refused recipient's error quotes the address (personal data).
        log.warning(
            "confirmation mail not built subscriber=%d: %s",
            pending.subscriber_id,
            type(exc).__name__,
        )
        return False
    return await deliver(factory, message, pending.email)


def confirm(ctx: Context, token: str, now: datetime) -> Confirmed:
    """Activate the subscriber a confirmation link names; TokenError for a bad or stale link."""
    subscriber_id = ctx.tokens.read_id(Purpose.CONFIRM, token)
    with ctx.session_factory.begin() as session:
        row = session.get(SubscriberRow, subscriber_id, with_for_update=True)
        if row is None:
            raise TokenError("this link is no longer valid: the subscription was removed")
        newly = row.status == SubscriberStatus.PENDING.value
        if newly and _suppressed(session, row.email):
            raise TokenError("this link is no longer valid: the address may not be mailed")
        if newly:
            activate_row(row, now)
            row.hard_bounces = 0
            row.soft_bounces = 0
            # Confirming by email is renewed consent: an erased address may come back.
            suppression_repo.lift(session, row.email, only_tombstone=True)
        elif row.status not in (SubscriberStatus.ACTIVE.value, SubscriberStatus.PAUSED.value):
            raise TokenError("this link is no longer valid: the subscription was cancelled")
        return Confirmed(repo.to_subscriber(row), newly)
