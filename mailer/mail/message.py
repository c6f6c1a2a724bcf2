"""EmailMessage building: MIME structure, list headers, Message-IDs and DKIM signing (pure)."""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from email import policy
from email._header_value_parser import UnstructuredTokenList
from email.generator import BytesGenerator
from email.headerregistry import (
    Address,
    AddressHeader,
    BaseHeader,
    HeaderRegistry,
    UnstructuredHeader,
)
from email.message import EmailMessage, Message
from functools import lru_cache
from io import BytesIO
from typing import Any

from mailer.errors import ConfigError, InvalidEmail
from mailer.mail.wire import crlf_only
from mailer.models import Links
from mailer.rendering import RenderedEmail


class _CachedHeaderRegistry(HeaderRegistry):
    """A header registry that builds each header class once.

    The stdlib's registry creates a new class on every header set (about 37 per digest),
    one of the largest costs of building a message; the classes it makes never change.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


MESSAGE_POLICY = policy.default.clone(header_factory=_CachedHeaderRegistry())
"""policy.default with cached header classes: byte-for-byte the same output, built faster."""
SMTP_POLICY = MESSAGE_POLICY.clone(linesep="\r\n")
"""The policy for bytes on the wire (and for DKIM, which signs those exact bytes)."""
SMTPUTF8_POLICY = SMTP_POLICY.clone(utf8=True)
"""The same for a message to or from a non-ASCII address: UTF-8 headers (RFC 6532)."""

DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)
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
        _refuse_line_breaks(value)
        header: Any = MESSAGE_POLICY.header_factory(name, value)
    except (ValueError, IndexError) as exc:
        raise InvalidEmail(f"invalid {what} {value!r}: {exc}") from None
    addresses = header.addresses if isinstance(header, AddressHeader) else ()
    if header.defects or len(addresses) != 1 or not addresses[0].domain:
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
    msg["From"] = _fixed_header("From", sender)
    msg["To"] = _recipient_header(recipient)
    if reply_to:
        msg["Reply-To"] = _fixed_header("Reply-To", reply_to)
    # Subjects and dates repeat across a run's messages (the Date header counts seconds).
    msg["Subject"] = _fixed_header("Subject", rendered.subject)
    msg["Date"] = _date_header(when.replace(microsecond=0), when.utcoffset())
    msg["Message-ID"] = message_id
    msg["List-Id"] = _fixed_header("List-Id", list_id)
    if links is not None:
        msg["List-Unsubscribe"] = list_unsubscribe(links)
        msg["List-Unsubscribe-Post"] = _fixed_header(
            "List-Unsubscribe-Post", "List-Unsubscribe=One-Click"
        )
        msg["Precedence"] = _fixed_header("Precedence", "bulk")
    if auto_submitted:
        msg["Auto-Submitted"] = _fixed_header("Auto-Submitted", "auto-generated")
    # Keeps Exchange out-of-office replies from answering a robot.
    msg["X-Auto-Response-Suppress"] = _fixed_header("X-Auto-Response-Suppress", "OOF, AutoReply")
    msg["MIME-Version"] = _fixed_header("MIME-Version", "1.0")
    parts: list[Message[str, str] | str] = [
        # ASCII text whose lines fit goes as it is (as ``set_content`` would send it); anything
        # else (abstracts carry any script) as quoted-printable.
        text_part(rendered.text, "plain", _transfer_encoding(rendered.text)),
        text_part(rendered.html, "html", _transfer_encoding(rendered.html)),
    ]
    msg["Content-Type"] = _alternative_header(parts)
    msg.set_payload(parts)
    return msg


_QP = "quoted-printable"
_BOUNDARY = f"=_mailer_{secrets.token_hex(12)}"
"""One random boundary per process. ``=_`` can never occur in quoted-printable text; a 7bit
part that happens to contain it gets a fresh boundary (``_alternative_header``)."""


class _FoldedOnce:
    """A header that remembers how it folds under each policy it is serialised with.

    Shared header objects never change, so folding one again for every message (the email
    package re-walks its parse tree each time) is wasted work: about a tenth of building one.
    Folding reads only the policy's line length, line separator and ``utf8``; the generator
    clones the policy for every MIME part, so those values, not the policy object, are the key.
    """

    def fold(self, *, policy: Any) -> str:
        """The folded header line(s), computed once per kind of policy."""
        folds: dict[tuple[Any, ...], str] = self.__dict__.setdefault("_folds", {})
        key = (policy.linesep, policy.max_line_length, policy.utf8)
        folded = folds.get(key)
        if folded is None:
            folded = folds[key] = super().fold(policy=policy)  # type: ignore[misc]
        return folded


@lru_cache(maxsize=64)
def _folded_once_class(base: type[BaseHeader]) -> type[BaseHeader]:
    return type(f"FoldedOnce{base.__name__}", (_FoldedOnce, base), {})


@lru_cache(maxsize=1024)
def _fixed_header(name: str, value: str) -> Any:
    """A header object parsed and folded once: the same From, List-Id, Content-Type everywhere.

    Header objects are immutable, and the email package stores one handed to it as is, so
    sharing them skips re-parsing (and, see ``_FoldedOnce``, re-folding) identical values,
    the largest costs of building a message. Address headers are checked like
    ``parse_address`` does.
    """
    _refuse_line_breaks(value)
    if name in ("From", "Reply-To"):
        parse_address(value, what=f"{name} address")
    return _shared_header(name, value)


def _shared_header(name: str, value: Any) -> Any:
    """A header object of the registry's class for ``name`` that folds once per policy."""
    registry: HeaderRegistry = MESSAGE_POLICY.header_factory  # type: ignore[assignment]
    return _folded_once_class(registry[name])(name, value)


def _refuse_line_breaks(value: str) -> None:
    """What ``msg[name] = value`` checks, for header objects made here and stored as they are.

    A line break in a header value would let it add headers of its own (a Bcc, say).
    """
    if len(value.splitlines()) > 1:
        raise ValueError("Header values may not contain linefeed or carriage return characters")


@lru_cache(maxsize=64)
def _date_header(when: datetime, offset: timedelta | None) -> Any:
    """A shared Date header, like ``_fixed_header``: one per second of sending.

    ``offset`` is part of the key because equal instants are equal datetimes whatever their
    offsets, and the header shows the offset.
    """
    return _shared_header("Date", when)


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
    part["Content-Type"] = _fixed_header("Content-Type", f'text/{subtype}; charset="utf-8"')
    part["Content-Transfer-Encoding"] = _fixed_header("Content-Transfer-Encoding", cte)
    part.set_payload(payload)
    return part


def _transfer_encoding(body: str) -> str:
    """7bit when the body allows it (no growth: Gmail clips at 102 KB), else quoted-printable."""
    # Split as text_part does (bytes: only CR and LF end a line), not as str.splitlines.
    if not body.isascii():
        return _QP
    fits = max(map(len, body.encode("ascii").splitlines()), default=0) <= MAX_7BIT_LINE
    return "7bit" if fits else _QP


def _alternative_header(parts: Sequence[Message[str, str] | str]) -> Any:
    boundary = _BOUNDARY
    if any(isinstance(part, Message) and boundary in str(part.get_payload()) for part in parts):
        boundary = f"=_mailer_{secrets.token_hex(12)}"
        return MESSAGE_POLICY.header_factory(
            "Content-Type", f'multipart/alternative; boundary="{boundary}"'
        )
    return _fixed_header("Content-Type", f'multipart/alternative; boundary="{boundary}"')


class _WireGenerator(BytesGenerator):
    """``BytesGenerator`` that copies a body whose lines all end in ``\\n`` in one write.

    The stock generator splits every body into lines and writes them one by one (the largest
    cost of serialising a digest); for the bodies ``text_part`` makes the result is the same.
    """

    def _write_lines(self, lines: str) -> None:
        if "\r" in lines:
            super()._write_lines(lines)  # type: ignore[misc]
            return
        if lines:
            self.write(lines.replace("\n", self._NL))  # type: ignore[attr-defined]


def message_bytes(msg: EmailMessage, *, utf8: bool = False) -> bytes:
    """The message as sent over SMTP (CRLF line endings); ``utf8`` for SMTPUTF8 headers."""
    return wire_bytes(msg, utf8=utf8)[0]


def wire_bytes(msg: EmailMessage, *, utf8: bool = False) -> tuple[bytes, bool]:
    """``message_bytes``, and whether the bytes are known to pass ``crlf_only``.

    True for the shape written directly (see ``_alternative_bytes``), which ends every line
    in CRLF as it writes it: the sender need not scan the whole message again for bare line
    ends. False means not known, not that there are any.
    """
    policy = SMTPUTF8_POLICY if utf8 else SMTP_POLICY
    direct = _alternative_bytes(msg, policy)
    if direct is not None:
        return direct, True
    out = BytesIO()
    _WireGenerator(out, mangle_from_=False, policy=policy).flatten(msg)
    return out.getvalue(), False


def _alternative_bytes(msg: EmailMessage, policy: Any) -> bytes | None:
    """What the generator writes for a multipart of plain text parts, written directly.

    The shape ``build_message`` makes: the generator spends most of its time on buffers, a
    sub-generator and a policy clone per part. Anything else (a nested multipart, a
    preamble, a body with CR or non-ASCII characters) gets None and goes through it.

    What it returns ends every line in CRLF: a body has no CR and each of its LFs is written
    as CRLF, and the other lines (headers, boundaries) are checked; should one of them not
    pass, the generator writes the message instead.
    """
    if msg.get_content_maintype() != "multipart" or msg.get_content_subtype() == "signed":
        return None
    parts = msg.get_payload()
    boundary = msg.get_boundary()
    if not isinstance(parts, list) or not parts or not boundary:
        return None
    if msg.preamble is not None or msg.epilogue is not None:
        return None
    nl = policy.linesep
    if nl != "\r\n":
        return None
    chunks = [_header_bytes(msg, policy)]
    bodies = []
    for index, part in enumerate(parts):
        payload = part.get_payload() if isinstance(part, Message) else None
        if not isinstance(payload, str) or part.get_content_maintype() != "text":
            return None
        if "\r" in payload or not payload.isascii():
            return None
        chunks.append(f"{nl if index else ''}--{boundary}{nl}".encode("ascii"))
        chunks.append(_header_bytes(part, policy))
        bodies.append(len(chunks))
        chunks.append(payload.replace("\n", nl).encode("ascii"))
    chunks.append(f"{nl}--{boundary}--{nl}".encode("ascii"))
    others = (chunk for index, chunk in enumerate(chunks) if index not in bodies)
    if not all(map(crlf_only, others)):
        return None
    return b"".join(chunks)


def _header_bytes(msg: Message[str, str], policy: Any) -> bytes:
    """The header block as ``BytesGenerator`` writes it, blank line included."""
    folded = [policy.fold_binary(name, value) for name, value in msg.raw_items()]
    folded.append(policy.linesep.encode("ascii"))
    return b"".join(folded)


def sign_message(
    msg: EmailMessage, *, selector: str, domain: str, private_key: bytes, utf8: bool = False
) -> bytes:
    """The message bytes with a DKIM-Signature (relaxed/relaxed, rsa-sha256) prepended.

    Returns bytes rather than a message because re-serialising could refold the signed
    headers; the caller sends these exact bytes. Needs the ``dkimpy`` package.
    """
    try:
        import dkim
    except ImportError:
        raise ConfigError("DKIM signing needs the dkimpy package: pip install dkimpy") from None
    raw = message_bytes(msg, utf8=utf8)
    present = {name.lower().encode() for name in msg}
    headers = [h for h in DKIM_HEADERS if h in present]
    try:
        signature: bytes = dkim.sign(
            raw,
            selector.encode(),
            domain.encode(),
            private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )
    except dkim.DKIMException as exc:
        raise ConfigError(f"DKIM signing failed (check MAILER_DKIM_*): {exc}") from None
    return signature + raw
