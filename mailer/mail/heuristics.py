"""Reports without a standard structure: old-style bounces (via flufl.bounce), auto-replies."""

from __future__ import annotations

import logging
import re
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.utils import parseaddr

from flufl.bounce import all_failures

from mailer.mail.report_types import (
    Report,
    ReportKind,
    clip,
    enhanced_status,
    kind_of_failure,
    smtp_code,
)

log = logging.getLogger(__name__)

_DAEMONS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mdaemon"}
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status|fail|notification|problem|warning)|failure notice"
    r"|returned mail|mail delivery failed|could not be delivered|nondeliverable|non-delivery"
    r"|rejected mail",
    re.IGNORECASE,
)
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation")
_AUTO_PRECEDENCE = {"auto_reply", "auto-reply"}
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|away from"
    r"|on vacation|vacation|abwesenheit|r[ée]ponse automatique|respuesta autom[áa]tica"
    r"|risposta automatica|automatisch antwoord|resposta autom[áa]tica|自动回复)",
    re.IGNORECASE,
)
_QUOTED_ID = re.compile(r"^message-id:\s*(<[^<>\s]{3,250}>)", re.IGNORECASE | re.MULTILINE)
_FAILURE_LINES = (  # a line quoting an enhanced status code, else an SMTP reply code
    re.compile(r"^.*\b[45]\.\d{1,3}\.\d{1,3}\b.*$", re.MULTILINE),
    re.compile(r"^.*(?<![\d.:])[45]\d\d[ -].*$", re.MULTILINE),
)


def header_text(message: Message, name: str) -> str:
    """A header's value with RFC 2047 encoded words (or raw 8-bit UTF-8) decoded."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        chunks = decode_header(value if isinstance(value, Header) else str(value))
    except (HeaderParseError, ValueError):
        return str(value)
    return "".join(_chunk_text(data, charset) for data, charset in chunks)


def _chunk_text(data: bytes | str, charset: str | None) -> str:
    if isinstance(data, str):
        return data
    if charset in (None, "unknown-8bit"):
        charset = "utf-8"
    try:
        return data.decode(charset, "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def looks_like_bounce(message: Message) -> bool:
    """Whether a message comes from a mail system reporting a failure (not from a person)."""
    name, address = parseaddr(header_text(message, "From"))
    return (
        address.lower().partition("@")[0] in _DAEMONS
        or "mail delivery" in name.lower()
        or message.get("X-Failed-Recipients") is not None
        or _BOUNCE_SUBJECT.search(header_text(message, "Subject")) is not None
    )


def read_nonstandard(message: Message, body: str) -> Report | None:
    """A bounce in one of the formats flufl.bounce knows (qmail, Exim, Exchange, Yahoo...)."""
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripped over this message: it is not one we can read
        log.debug("flufl.bounce could not read a message", exc_info=True)
        return None
    if not (temporary or permanent):
        return None
    recipients = tuple(
        sorted({address.decode("ascii", "replace").lower() for address in permanent | temporary})
    )
    line = _failure_line(body)
    status = enhanced_status(line)
    kind = kind_of_failure(status, delayed=not permanent)
    if not permanent and status is None:
        status = "4.0.0"
    return Report(
        kind=kind,
        format="heuristic",
        status=status,
        code=smtp_code(line),
        detail=clip(line or "undeliverable (no reason given)"),
        recipients=recipients,
        message_ids=quoted_message_ids(body),
    )


def _failure_line(body: str) -> str:
    """The first line of the human-readable text that quotes an SMTP or enhanced code."""
    for pattern in _FAILURE_LINES:
        found = pattern.search(body[:200_000])
        if found:
            return found.group(0).strip()
    return ""


def quoted_message_ids(body: str) -> tuple[str, ...]:
    """Message-IDs in headers quoted inside a body (a returned message pasted as text)."""
    return tuple(dict.fromkeys(_QUOTED_ID.findall(body)))


def read_auto_reply(message: Message) -> Report | None:
    """An RFC 3834 automatic reply, or a vacation message in a common format."""
    submitted = str(message.get("Auto-Submitted", "")).partition(";")[0].strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    subject = header_text(message, "Subject")
    why = None
    if submitted and submitted != "no":
        why = f"Auto-Submitted: {submitted}"
    elif any(message.get(name) is not None for name in _AUTO_HEADERS):
        why = "an auto-reply header"
    elif precedence in _AUTO_PRECEDENCE:
        why = f"Precedence: {precedence}"
    elif _AUTO_SUBJECT.search(subject):
        why = "a vacation subject"
    if why is None:
        return None
    return Report(ReportKind.AUTO_REPLY, "auto-reply", detail=clip(f"automatic reply ({why})"))
