"""The shape of an email: MIME structure, headers, list headers and Message-IDs (pure).

A digest is ``multipart/alternative`` (plain text, then HTML) with the headers below; how it
is built and written quickly is ``mail._fast``'s business, the bytes ``mail.wire``'s.
"""

from __future__ import annotations

import binascii
import re
import secrets
from datetime import datetime
from email._header_value_parser import UnstructuredTokenList
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address, AddressHeader, BaseHeader, UnstructuredHeader
from email.message import EmailMessage, Message
from functools import lru_cache
from typing import Any

from mailer.errors import ConfigError, InvalidEmail
from mailer.mail._fast import (
    MESSAGE_POLICY,
    alternative_header,
    date_header,
    fixed_header,
    refuse_line_breaks,
)
from mailer.models import Links
from mailer.rendering import RenderedEmail

MAX_7BIT_LINE = 998  # RFC 5322 §2.1.1, without the CRLF
_MSGID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
_UNSAFE_IN_ANGLES = re.compile(r"[\s<>,]")


@lru_cache(maxsize=4096)
def parse_address(value: str, *, what: str = "address") -> Address:
    """Parse exactly one valid address with the email package, else raise InvalidEmail.

    Cached: the From and Reply-To addresses are the same on every message.
    """
    address: Address = _address_header("To", value, what).addresses[0]
    return address


def _address_header(name: str, value: str, what: str) -> AddressHeader:
    """The ``name`` header holding exactly one valid address, else InvalidEmail.

    The header is what a message stores, so a recipient is parsed once, not once to check
    it and again when it is set (the email package re-parses an ``Address`` it is given).
    """
    try:
        refuse_line_breaks(value)
        header: Any = MESSAGE_POLICY.header_factory(name, value)
    except (ValueError, IndexError) as exc:
        raise InvalidEmail(f"invalid {what} {value!r}: {exc}") from None
    addresses = header.addresses if isinstance(header, AddressHeader) else ()
    # A non-ASCII mailbox name is only a defect without SMTPUTF8; mailer.addresses decides
    # whether one may be stored (MAILER_SMTPUTF8), and such messages are written in UTF-8.
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    if defects or len(addresses) != 1 or not addresses[0].domain:
        raise InvalidEmail(f"invalid {what} {value!r}: expected one address like name@example.org")
    if not addresses[0].username:
        raise InvalidEmail(f"invalid {what} {value!r}: the part before @ is empty")
    return header  # type: ignore[no-any-return]


def _recipient_header(recipient: str) -> AddressHeader:
    """The To header, written as the email package writes the address it parsed.

    A stored address is already in that form (the usual case: parsed once); anything else,
    such as surrounding spaces or a quoted plain name, is tidied as it always was.
    """
    header = _address_header("To", recipient, "recipient address")
    tidy = str(header.addresses[0])
    if tidy == recipient:
        return header
    return MESSAGE_POLICY.header_factory("To", tidy)  # type: ignore[no-any-return]


def _sender_domain(sender: str) -> str:
    try:
        return parse_address(sender, what="From address").domain
    except InvalidEmail as exc:
        raise ConfigError(f"MAILER_FROM: {exc}") from None


def make_message_id(sender: str) -> str:
    """A fresh, unique Message-ID at the From address's domain: ``<random@domain>``."""
    return f"<{secrets.token_hex(16)}@{_sender_domain(sender)}>"


def list_id_for(sender: str, description: str = "Paper digest") -> str:
    """The List-Id of the digests sent from ``sender``: ``Paper digest <digest.example.org>``.

    One list per From domain, whatever the From mailbox: readers' filters keep working when
    the operator changes the sender's local part.
    """
    address = parse_address(sender, what="From address")
    return f"{description} <digest.{address.domain.lower()}>"


class ListHeader(UnstructuredHeader, BaseHeader):
    """A header of ``<uri>`` entries folded only between entries, never RFC 2047-encoded.

    The default folding turns a URL longer than a line into encoded words, which mail
    clients then fail to recognise as an unsubscribe link.
    """

    @classmethod
    def parse(cls, value: str, kwds: dict[str, Any]) -> None:
        """Entries checked by ``_angle`` are plain ASCII: nothing to decode, no tree to fold."""
        if not value.isascii() or "=?" in value:  # could hold an encoded word: parse it
            super().parse(value, kwds)
            return
        kwds["parse_tree"] = UnstructuredTokenList()
        kwds["decoded"] = value

    def fold(self, *, policy: Any) -> str:
        """The header line(s): one entry per line, each entry kept whole."""
        separator = "," + policy.linesep + " "
        return f"{self.name}: {separator.join(str(self).split(', '))}{policy.linesep}"


def _angle(url: str) -> str:
    """One List-Unsubscribe entry; refuses what could break out of the angle brackets."""
    if not url.isascii() or _UNSAFE_IN_ANGLES.search(url):
        raise ValueError(f"unsafe URL for List-Unsubscribe: {url!r}")
    return f"<{url}>"


def list_unsubscribe(links: Links) -> ListHeader:
    """The List-Unsubscribe header: the one-click https URL, then the mailto when there is one."""
    entries = [_angle(links.unsubscribe)]
    if links.unsubscribe_mailto:
        entries.append(_angle(links.unsubscribe_mailto))
    return ListHeader("List-Unsubscribe", ", ".join(entries))


def build_message(
    rendered: RenderedEmail,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    links: Links | None,
    list_id: str,
    when: datetime,
    auto_submitted: bool = False,
    reply_to: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with the headers the README lists.

    ``links`` given: a bulk digest with one-click List-Unsubscribe (RFC 8058) and
    ``Precedence: bulk``. ``auto_submitted``: a transactional mail (confirmation) that
    auto-responders must not answer.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("build_message needs a timezone-aware datetime for Date")
    if not _MSGID.match(message_id):
        raise ValueError(f"malformed Message-ID {message_id!r}; use make_message_id()")
    msg = EmailMessage(policy=MESSAGE_POLICY)
    parse_address(sender, what="From address")  # cached: checked once per process
    msg["From"] = fixed_header("From", sender)
    msg["To"] = _recipient_header(recipient)
    if reply_to:
        parse_address(reply_to, what="Reply-To address")
        msg["Reply-To"] = fixed_header("Reply-To", reply_to)
    # Subjects and dates repeat across a run's messages (the Date header counts seconds).
    msg["Subject"] = fixed_header("Subject", rendered.subject)
    msg["Date"] = date_header(when.replace(microsecond=0), when.utcoffset())
    msg["Message-ID"] = message_id
    msg["List-Id"] = fixed_header("List-Id", list_id)
    if links is not None:
        msg["List-Unsubscribe"] = list_unsubscribe(links)
        msg["List-Unsubscribe-Post"] = fixed_header(
            "List-Unsubscribe-Post", "List-Unsubscribe=One-Click"
        )
        msg["Precedence"] = fixed_header("Precedence", "bulk")
    if auto_submitted:
        msg["Auto-Submitted"] = fixed_header("Auto-Submitted", "auto-generated")
    # Keeps Exchange out-of-office replies from answering a robot.
    msg["X-Auto-Response-Suppress"] = fixed_header("X-Auto-Response-Suppress", "OOF, AutoReply")
    msg["MIME-Version"] = fixed_header("MIME-Version", "1.0")
    parts: list[Message[str, str] | str] = [
        # ASCII text whose lines fit goes as it is (as ``set_content`` would send it); anything
        # else (abstracts carry any script) as quoted-printable.
        text_part(rendered.text, "plain", _transfer_encoding(rendered.text)),
        text_part(rendered.html, "html", _transfer_encoding(rendered.html)),
    ]
    msg["Content-Type"] = alternative_header(parts)
    msg.set_payload(parts)
    return msg


_QP = "quoted-printable"


def text_part(body: str, subtype: str, cte: str) -> EmailMessage:
    """A UTF-8 ``text/<subtype>`` part, encoded as ``cte`` (``7bit`` or ``quoted-printable``).

    The part ``set_content`` makes, without its per-message header parsing and with the C
    quoted-printable encoder: ``binascii.b2a_qp`` wraps at 76 characters as RFC 2045 asks
    (the email package's encoder at 78) and also encodes a line that is a lone ``.``.
    """
    data = body.encode("utf-8")
    if b"\r" in data:  # only CR and LF end a line in bytes: without CR, LF lines stay as they are
        data = b"\n".join(data.splitlines()) + b"\n"
    elif not data.endswith(b"\n"):
        data += b"\n"
    if cte == _QP:
        payload = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False).decode("ascii")
    else:
        payload = data.decode("ascii")
    part = EmailMessage(policy=MESSAGE_POLICY)
    part["Content-Type"] = fixed_header("Content-Type", f'text/{subtype}; charset="utf-8"')
    part["Content-Transfer-Encoding"] = fixed_header("Content-Transfer-Encoding", cte)
    part.set_payload(payload)
    return part


def _transfer_encoding(body: str) -> str:
    """7bit when the body allows it (no growth: Gmail clips at 102 KB), else quoted-printable."""
    # Split as text_part does (bytes: only CR and LF end a line), not as str.splitlines.
    if not body.isascii():
        return _QP
    if "\r" not in body:  # only LF ends a line: the same lines, without encoding the body
        return "7bit" if max(map(len, body.split("\n"))) <= MAX_7BIT_LINE else _QP
    fits = max(map(len, body.encode("ascii").splitlines()), default=0) <= MAX_7BIT_LINE
    return "7bit" if fits else _QP
