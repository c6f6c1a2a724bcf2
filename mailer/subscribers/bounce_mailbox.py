"""Read the bounce mailbox: classify each message, apply what it proves, mark it dealt with.

A message is marked only after what it changed is committed, so a crash re-reads it, and
reading it again changes nothing (``bounce_report.key`` is a digest of its bytes). A message
that cannot be parsed safely (a MIME bomb) is kept, flagged for a person, and counted.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field

from mailer.config import Settings
from mailer.context import Context
from mailer.delivery.inbound import Inbox, Incoming
from mailer.delivery.inboxes import open_inbox
from mailer.mail.reports import Unreadable, read_report
from mailer.subscribers.bounces import Applied, Outcome, apply_report

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BounceOptions:
    """The limits a run works within (from settings)."""

    bounce_limit: int = 1
    max_parts: int = 200
    batch: int = 1000

    @classmethod
    def from_settings(cls, settings: Settings) -> BounceOptions:
        """The options the ``MAILER_BOUNCE_*`` settings give."""
        return cls(settings.bounce_limit, settings.bounce_max_parts, settings.bounce_batch)


@dataclass
class BounceRun:
    """What one reading of the mailbox did."""

    read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0  # kept in the mailbox, flagged for a person
    truncated: int = 0  # longer than MAILER_BOUNCE_MAX_BYTES: classified from the start only
    became: Counter[str] = field(default_factory=Counter)  # subscribers now bounced, unsubscribed

    def as_dict(self) -> dict[str, int]:
        """Every count, by name (for ``--json`` and the log)."""
        counts = {outcome.value: self.outcomes[outcome.value] for outcome in Outcome}
        return {
            "read": self.read,
            **counts,
            "unreadable": self.unreadable,
            "truncated": self.truncated,
            "now_bounced": self.became["bounced"],
            "now_unsubscribed": self.became["unsubscribed"],
        }


def read_bounces(ctx: Context, inbox: Inbox, options: BounceOptions) -> BounceRun:
    """Deal with up to ``options.batch`` waiting messages; the rest wait for the next run."""
    run = BounceRun()
    for incoming in inbox.messages(options.batch):
        run.read += 1
        run.truncated += incoming.truncated
        applied = _one(ctx, incoming, options)
        if applied is None:
            run.unreadable += 1
            inbox.keep(incoming.key)
            continue
        run.outcomes[applied.outcome.value] += 1
        if applied.became:
            run.became[applied.became] += 1
        inbox.done(incoming.key)
    return run


def _one(ctx: Context, incoming: Incoming, options: BounceOptions) -> Applied | None:
    try:
        report = read_report(incoming.data, max_parts=options.max_parts)
    except Unreadable as exc:
        log.warning("bounce mailbox: message %s kept unread: %s", incoming.key, exc)
        return None
    key = hashlib.sha256(incoming.data).hexdigest()
    applied = apply_report(ctx, report, key, ctx.clock(), options.bounce_limit)
    _log(incoming, report.kind.value, report.status, applied, ctx.return_path is None)
    return applied


def _log(
    incoming: Incoming, kind: str, status: str | None, applied: Applied, unsigned: bool
) -> None:
    if applied.outcome is Outcome.UNPROVEN:
        why = "no MAILER_BOUNCE_ADDRESS is set" if unsigned else "no valid signed tag in it"
        log.warning(
            "bounce report %s (%s, claims %s) not applied: %s",
            incoming.key, kind, applied.claims, why,
        )  # fmt: skip
        return
    log.info(
        "bounce report %s: %s status=%s digest=%s subscriber=%s%s",
        incoming.key, applied.outcome.value, status or "-", applied.digest_id or "-",
        applied.subscriber_id or "-", f" now {applied.became}" if applied.became else "",
    )  # fmt: skip


def check_mailbox(ctx: Context, settings: Settings) -> BounceRun:
    """Open ``MAILER_BOUNCE_MAILBOX``, deal with what waits there, close it (blocking I/O)."""
    inbox = open_inbox(settings)
    try:
        run = read_bounces(ctx, inbox, BounceOptions.from_settings(settings))
    finally:
        inbox.close()
    if run.read:
        log.info(
            "bounce mailbox read: %s",
            " ".join(f"{name}={count}" for name, count in run.as_dict().items() if count),
        )
    return run
