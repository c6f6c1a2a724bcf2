"""What an SMTP refusal means: a dead mailbox, a policy rejection, or our own problem."""

from __future__ import annotations

import re
from enum import StrEnum

from mailer.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


class Stage(StrEnum):
    """The SMTP step a reply answered."""

    CONNECT = "connect"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"


class Refusal(StrEnum):
    """How the outbox treats a permanent refusal."""

    HARD_BOUNCE = "hard_bounce"  # the mailbox does not exist or will not take mail
    POLICY = "policy"  # 5.7.x: spam/DMARC/policy; the address may well be alive
    OTHER = "other"  # our side (sender, message content): do not blame the subscriber


class SmtpTransientError(TransientDeliveryError):
    """A 4xx reply, timeout or disconnect, with the SMTP step it happened at."""

    def __init__(self, message: str, code: int | None = None, stage: Stage | None = None) -> None:
        self.stage = stage
        super().__init__(message, code)


class SmtpPermanentError(PermanentDeliveryError):
    """A 5xx reply, with the SMTP step it answered."""

    def __init__(self, message: str, code: int | None = None, stage: Stage | None = None) -> None:
        self.stage = stage
        super().__init__(message, code)


def enhanced_status(reply: str) -> tuple[int, int, int] | None:
    """The RFC 3463 enhanced status code in a reply text (``5.1.1``), if any."""
    found = _ENHANCED.search(reply)
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2)), int(found.group(3))


def stage_of(error: DeliveryError) -> Stage | None:
    """The SMTP step an error happened at, when the transport said."""
    return getattr(error, "stage", None)


def classify(error: PermanentDeliveryError) -> Refusal:
    """Decide whether a permanent refusal counts as a hard bounce for the subscriber."""
    enhanced = enhanced_status(str(error))
    if enhanced is not None and enhanced[1] == 7:
        return Refusal.POLICY
    stage = stage_of(error)
    if stage in (Stage.MAIL, Stage.CONNECT):
        return Refusal.OTHER  # the server refused us, not the recipient
    if enhanced is not None and enhanced[1] in (3, 4, 5, 6) and stage is not Stage.RCPT:
        return Refusal.OTHER  # system, network, protocol or content trouble
    return Refusal.HARD_BOUNCE
