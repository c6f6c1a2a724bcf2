"""Standard reports: delivery status notifications (RFC 3464) and feedback reports (RFC 5965)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from email.message import Message
from email.parser import HeaderParser
from email.utils import parseaddr

from mailer.mail.report_types import (
    Report,
    ReportKind,
    clip,
    enhanced_status,
    kind_of_failure,
    smtp_code,
)

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_FEEDBACK_TYPES = ("message/feedback-report",)
_RETURNED_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers")
# abuse, fraud, virus and other are a reader's complaint; not-spam and auth-failure (a DMARC
# failure report) are not, and neither is anything unknown.
_COMPLAINTS = {"abuse", "fraud", "virus", "other"}
_SUCCESS = ("delivered", "relayed", "expanded")
_RANK = {ReportKind.HARD: 0, ReportKind.SOFT: 1, ReportKind.POLICY: 2}


def read_standard(parts: Sequence[Message]) -> Report | None:
    """A report from the machine-readable part of a DSN or an ARF report, if there is one."""
    returned = _returned_ids(parts)
    for part in parts:
        content_type = part.get_content_type()
        if content_type in _FEEDBACK_TYPES:
            return _feedback(part, returned)
        if content_type in _STATUS_TYPES:
            status = _status(part, returned)
            if status is not None:
                return status
    return None


def _feedback(part: Message, returned: tuple[str, ...]) -> Report:
    blocks = _blocks(part)
    fields = blocks[0] if blocks else Message()
    feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
    recipients = tuple(_addresses(fields.get_all("Original-Rcpt-To", [])))
    kind = ReportKind.COMPLAINT if feedback_type in _COMPLAINTS else ReportKind.UNKNOWN
    return Report(
        kind=kind,
        format="arf",
        status=feedback_type or None,
        detail=clip(f"feedback report: {feedback_type or 'no Feedback-Type'}"),
        recipients=recipients,
        message_ids=returned,
    )


def _status(part: Message, returned: tuple[str, ...]) -> Report | None:
    blocks = _blocks(part)
    per_recipient = [block for block in blocks[1:] if block.get("Action")]
    failures = [f for f in (_failure(block) for block in per_recipient) if f is not None]
    if not failures and per_recipient and all(_succeeded(block) for block in per_recipient):
        return Report(ReportKind.UNKNOWN, "dsn", detail="delivery status: delivered")
    if not failures:  # a DSN too broken to say: the heuristics may know better
        return None
    failures.sort(key=lambda failure: _RANK[failure.kind])
    worst = failures[0]
    recipients = tuple(dict.fromkeys(r for f in failures for r in f.recipients))
    return Report(
        kind=worst.kind,
        format="dsn",
        status=worst.status,
        code=worst.code,
        detail=worst.detail,
        recipients=recipients,
        message_ids=returned,
    )


def _succeeded(block: Message) -> bool:
    return str(block.get("Action", "")).strip().lower().startswith(_SUCCESS)


def _failure(block: Message) -> Report | None:
    action = str(block.get("Action", "")).strip().lower()
    delayed = action.startswith("delayed")
    if not (delayed or action.startswith(("fail", "error"))):  # opensmtpd writes 'error'
        return None
    diagnostic = str(block.get("Diagnostic-Code", "")).partition(";")[2].strip()
    status = enhanced_status(str(block.get("Status", "")))
    quoted = enhanced_status(diagnostic)
    if quoted and (status is None or status.endswith(".0.0")):
        status = quoted  # "Status: 5.0.0" says less than the server's own "550-5.7.1"
    recipients = _addresses(
        [str(block.get(name, "")) for name in ("Original-Recipient", "Final-Recipient")]
    )
    return Report(
        kind=kind_of_failure(status, delayed=delayed),
        format="dsn",
        status=status,
        code=smtp_code(diagnostic),
        detail=clip(diagnostic or f"{action} {status or ''}".strip()),
        recipients=tuple(recipients),
    )


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a delivery-status or feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the email package splits message/delivery-status itself
        return [block for block in payload if isinstance(block, Message)]
    text = part.get_payload(decode=True)
    if not isinstance(text, bytes):
        return []
    body = text.decode("utf-8", "replace").replace("\r\n", "\n")
    return [HeaderParser().parsestr(chunk) for chunk in body.split("\n\n") if chunk.strip()]


def _addresses(values: Iterable[str]) -> list[str]:
    """Bare lowercase addresses from ``rfc822; a@b`` fields, in order, once each."""
    found: list[str] = []
    for value in values:
        address = parseaddr(str(value).rpartition(";")[2].strip())[1].strip().lower()
        if "@" in address and address not in found:
            found.append(address)
    return found


def _returned_ids(parts: Sequence[Message]) -> tuple[str, ...]:
    """The Message-IDs of the returned original message or headers."""
    found: list[str] = []
    for part in parts:
        if part.get_content_type() not in _RETURNED_TYPES:
            continue
        for headers in _returned_headers(part):
            value = str(headers.get("Message-ID", "")).strip()
            if value and value not in found:
                found.append(value)
    return tuple(found)


def _returned_headers(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [item for item in payload if isinstance(item, Message)]
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return []
    return [HeaderParser().parsestr(data.decode("utf-8", "replace"))]
