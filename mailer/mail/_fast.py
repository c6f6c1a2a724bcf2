"""The fast path of building and writing digests: private; the stock email package is the reference.

Everything here produces exactly what ``email`` produces on its own, only sooner: shared,
pre-folded header objects (parsing and folding headers was the largest cost of building a
message) and a direct writer for the one MIME shape digests have. ``tests/test_message.py``
compares every output with the stock generator's.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from email import policy
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from functools import lru_cache
from typing import Any


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

_BOUNDARY = f"=_mailer_{secrets.token_hex(12)}"
"""One random boundary per process. ``=_`` can never occur in quoted-printable text; a 7bit
part that happens to contain it gets a fresh boundary (``alternative_header``)."""


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
def fixed_header(name: str, value: str) -> Any:
    """A header object parsed and folded once: the same From, List-Id, Content-Type everywhere.

    Header objects are immutable, and the email package stores one handed to it as is, so
    sharing them skips re-parsing (and, see ``_FoldedOnce``, re-folding) identical values,
    the largest costs of building a message. The caller checks address headers
    (``message.parse_address``).
    """
    refuse_line_breaks(value)
    return shared_header(name, value)


def shared_header(name: str, value: Any) -> Any:
    """A header object of the registry's class for ``name`` that folds once per policy."""
    registry: HeaderRegistry = MESSAGE_POLICY.header_factory  # type: ignore[assignment]
    return _folded_once_class(registry[name])(name, value)


def refuse_line_breaks(value: str) -> None:
    """What ``msg[name] = value`` checks, for header objects made here and stored as they are.

    A line break in a header value would let it add headers of its own (a Bcc, say).
    """
    if len(value.splitlines()) > 1:
        raise ValueError("Header values may not contain linefeed or carriage return characters")


@lru_cache(maxsize=64)
def date_header(when: datetime, offset: timedelta | None) -> Any:
    """A shared Date header, like ``fixed_header``: one per second of sending.

    ``offset`` is part of the key because equal instants are equal datetimes whatever their
    offsets, and the header shows the offset.
    """
    return shared_header("Date", when)


def alternative_header(parts: Sequence[Message[str, str] | str]) -> Any:
    boundary = _BOUNDARY
    if any(isinstance(part, Message) and boundary in str(part.get_payload()) for part in parts):
        boundary = f"=_mailer_{secrets.token_hex(12)}"
        return MESSAGE_POLICY.header_factory(
            "Content-Type", f'multipart/alternative; boundary="{boundary}"'
        )
    return fixed_header("Content-Type", f'multipart/alternative; boundary="{boundary}"')


class WireGenerator(BytesGenerator):
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


def alternative_chunks(msg: EmailMessage, policy: Any) -> tuple[list[bytes], set[int]] | None:
    """What the generator writes for a multipart of plain text parts, written directly.

    The shape ``build_message`` makes: the generator spends most of its time on buffers, a
    sub-generator and a policy clone per part. Anything else (a nested multipart, a
    preamble, a body with CR or non-ASCII characters) gets None and goes through it.

    Returns the chunks to join and which of them are bodies. A body has no CR and each of
    its LFs is written as CRLF; the caller checks the other chunks (headers, boundaries) end
    their lines in CRLF, and has the generator write the message when one does not.
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
    chunks = [header_bytes(msg, policy)]
    bodies: set[int] = set()
    for index, part in enumerate(parts):
        payload = part.get_payload() if isinstance(part, Message) else None
        if not isinstance(payload, str) or part.get_content_maintype() != "text":
            return None
        if "\r" in payload or not payload.isascii():
            return None
        chunks.append(f"{nl if index else ''}--{boundary}{nl}".encode("ascii"))
        chunks.append(header_bytes(part, policy))
        bodies.add(len(chunks))
        chunks.append(payload.replace("\n", nl).encode("ascii"))
    chunks.append(f"{nl}--{boundary}--{nl}".encode("ascii"))
    return chunks, bodies


def header_bytes(msg: Message[str, str], policy: Any) -> bytes:
    """The header block as ``BytesGenerator`` writes it, blank line included."""
    folded = [policy.fold_binary(name, value) for name, value in msg.raw_items()]
    folded.append(policy.linesep.encode("ascii"))
    return b"".join(folded)
