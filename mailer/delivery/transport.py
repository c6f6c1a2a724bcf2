"""The transport interface, and the Maildir transport used when no SMTP server is configured."""

from __future__ import annotations

import asyncio
import mailbox
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from mailer.delivery.refusal import SmtpTransientError
from mailer.errors import ConfigError


@dataclass(frozen=True, slots=True)
class WireMessage:
    """A message already serialised for SMTP (CRLF line endings) and its envelope sender.

    Serialising once, where the message is built, spares the transport a second pass through
    the email package; DKIM-signed bytes go out exactly as they were signed.
    """

    data: bytes
    sender: str
    # True only where ``data`` is known to pass ``crlf_only`` (checked, or written so by
    # ``message.wire_bytes``): the sender then skips that scan.
    crlf_checked: bool = False


Outgoing = EmailMessage | WireMessage
"""What a transport sends: a message object, or one already serialised."""


@runtime_checkable
class Transport(Protocol):
    """Hands one message to one recipient; used as an async context manager.

    ``send`` returns on success (the server's reply to DATA when it has one, else None)
    and raises ``TransientDeliveryError`` or ``PermanentDeliveryError`` otherwise.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def send(self, message: Outgoing, recipient: str) -> str | None:
        """Deliver ``message`` to ``recipient``."""
        ...


class MaildirTransport:
    """Delivers into a Maildir (Python's ``mailbox``), readable by mutt and friends."""

    concurrency = 4

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._box: mailbox.Maildir | None = None
        # mailbox names files from a class-wide counter that is not thread-safe.
        self._lock = threading.Lock()

    async def __aenter__(self) -> Self:
        try:
            self._open()
        except OSError as exc:
            raise ConfigError(f"cannot use {self.path} as the outbox Maildir: {exc}") from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._box = None

    def _open(self) -> mailbox.Maildir:
        if self._box is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._box = mailbox.Maildir(self.path, create=True)
        return self._box

    def _add(self, data: bytes) -> str:
        with self._lock:
            return str(self._open().add(data))

    async def send(self, message: Outgoing, recipient: str) -> str | None:
        """Write the message into ``new/`` with a ``Delivered-To`` header naming the recipient."""
        # Serialise instead of adding the header to ``message``: the caller's object stays intact.
        if isinstance(message, WireMessage):
            body = message.data.replace(b"\r\n", b"\n")  # files in a Maildir end lines in LF
        else:
            # A non-ASCII mailbox name is written raw in UTF-8 headers (RFC 6532), as over
            # SMTPUTF8; the default policy would put an encoded word inside the address.
            policy = default_policy if recipient.isascii() else default_policy.clone(utf8=True)
            body = message.as_bytes(policy=policy)
        data = f"Delivered-To: {recipient}\n".encode() + body
        try:
            key = await asyncio.to_thread(self._add, data)
        except OSError as exc:
            raise SmtpTransientError(f"cannot write to Maildir {self.path}: {exc}") from exc
        return f"stored as {key}"
