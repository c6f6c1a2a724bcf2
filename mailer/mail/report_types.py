"""What an incoming report says: its kind, status, recipients and the message it is about."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

DETAIL_LIMIT = 300  # characters of diagnostic text kept: enough to explain, not a whole mail

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_BASIC = re.compile(r"(?<![\d.])([245]\d\d)(?=[ -])")


class ReportKind(StrEnum):
    """How an incoming message changes things (only hard, soft and complaint touch anyone)."""

    HARD = "hard"  # the mailbox does not exist or refuses mail for good
    SOFT = "soft"  # a temporary failure: full mailbox, delayed, try later
    POLICY = "policy"  # refused for the message's sake (spam filter, DMARC, size), not the mailbox
    COMPLAINT = "complaint"  # the reader pressed "this is spam" (a feedback-loop report)
    AUTO_REPLY = "auto_reply"  # vacation and other automatic replies
    UNKNOWN = "unknown"  # anything else: a person's reply, spam, a success notice


@dataclass(frozen=True, slots=True)
class Report:
    """A classified incoming message.

    ``message_ids`` and ``recipients`` are what the report claims (anyone can write them);
    ``evidence`` is the text in which signed return-path tags are looked for.
    """

    kind: ReportKind
    format: str  # dsn, arf, qmail, exim, ..., auto-reply, none
    status: str | None = None  # an enhanced status (5.1.1) or a feedback type (abuse)
    code: int | None = None  # the SMTP reply code, when the report quotes one
    detail: str = ""
    recipients: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    evidence: str = field(default="", repr=False)


class Unreadable(Exception):
    """The message cannot be classified safely (a MIME bomb, a broken structure)."""


def enhanced_status(text: str) -> str | None:
    """The first RFC 3463 enhanced status code in ``text`` (``5.1.1``), if any."""
    found = _ENHANCED.search(text)
    return found.group(0) if found else None


def smtp_code(text: str) -> int | None:
    """The first SMTP reply code in ``text`` (``550``), if any."""
    found = _BASIC.search(text)
    return int(found.group(1)) if found else None


def kind_of_failure(status: str | None, *, delayed: bool = False) -> ReportKind:
    """Hard, soft or policy for a failed delivery, by its enhanced status code (RFC 3463).

    A class-5 code is hard, except: a full mailbox (5.2.2) is soft, as listmonk's and
    Mailman's users expect; X.7.x (policy, DMARC, spam), X.6.x (content) and a message too
    large (5.2.3, 5.3.4) are about the message, not the reader's mailbox, so they are never
    counted against the reader. (Sendmail's "553 5.3.0 Addressee unknown" stays hard.)
    """
    if delayed or (status is not None and status.startswith("4")):
        return ReportKind.SOFT
    if status is None or not status.startswith("5"):
        return ReportKind.HARD  # a failure without a usable code: the MTA gave up for good
    _, subject, detail = (int(part) for part in status.split("."))
    if subject in (6, 7) or (subject, detail) in ((2, 3), (3, 4)):
        return ReportKind.POLICY
    if (subject, detail) == (2, 2):
        return ReportKind.SOFT
    return ReportKind.HARD


def clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
