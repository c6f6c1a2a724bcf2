"""Confirmation emails for pending subscribers the operator added (``subscribers add|import``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mailer.context import Context
from mailer.db import subscribers as repo
from mailer.db.session import SessionFactory
from mailer.delivery import Transport
from mailer.errors import MailerError
from mailer.subscribers.signup import PendingConfirmation, confirmation_message

log = logging.getLogger(__name__)

CHUNK = 500


@dataclass(frozen=True, slots=True)
class ConfirmationReport:
    """How many confirmation emails went out, and how many could not be handed over."""

    sent: int = 0
    failed: int = 0


def awaiting_mail(
    session_factory: SessionFactory, emails: Sequence[str]
) -> list[PendingConfirmation]:
    """Those of these addresses that are pending and were never sent a confirmation email."""
    with session_factory() as session:
        found = repo.pending_unmailed(session, emails)
    return [PendingConfirmation(id_, email) for id_, email in sorted(found)]


async def send_all(
    ctx: Context, transport: Transport, pending: Sequence[PendingConfirmation], concurrency: int
) -> ConfirmationReport:
    """Mail each a confirmation link, ``concurrency`` at a time; sent ones are marked as sent."""
    gate = asyncio.Semaphore(concurrency)
    sent = failed = 0

    async def one(item: PendingConfirmation) -> bool:
        async with gate:
            try:
                await transport.send(confirmation_message(ctx, item, ctx.clock()), item.email)
            except (MailerError, OSError) as exc:
                # The address is personal data; the subscriber id is enough to find it.
                log.warning("confirmation mail failed subscriber=%d: %s", item.subscriber_id, exc)
                return False
            return True

    for start in range(0, len(pending), CHUNK):
        chunk = pending[start : start + CHUNK]
        outcomes = await asyncio.gather(*(one(item) for item in chunk))
        done = [item.subscriber_id for item, ok in zip(chunk, outcomes, strict=True) if ok]
        _mark_sent(ctx.session_factory, done, ctx.clock())
        sent, failed = sent + len(done), failed + len(chunk) - len(done)
    log.debug("confirmation mails sent=%d failed=%d", sent, failed)
    return ConfirmationReport(sent, failed)


def _mark_sent(session_factory: SessionFactory, ids: Sequence[int], now: datetime) -> None:
    if not ids:
        return
    with session_factory.begin() as session:
        repo.mark_confirmation_sent(session, ids, now)
