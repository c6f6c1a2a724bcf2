"""The bounce mailbox over IMAP (IMAPClient): unseen messages in, ``\\Seen`` once dealt with.

``imaps://user@host[:993]/FOLDER`` connects with TLS; ``imap://user@host[:143]/FOLDER`` with
STARTTLS, which is required (a password never crosses the network in clear). Each message is
fetched with a partial ``BODY.PEEK[]<0.N>``, so the server sends at most ``max_bytes`` of it.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailer.delivery.inbound import Incoming
from mailer.errors import ConfigError, MailerError

log = logging.getLogger(__name__)

TIMEOUT = 60.0
SEEN, FLAGGED = b"\\Seen", b"\\Flagged"
_SIZE, _BODY = b"RFC822.SIZE", b"BODY[]<0>"


class MailboxError(MailerError):
    """The bounce mailbox could not be read (connection, login, folder)."""


@dataclass(frozen=True, slots=True)
class ImapAddress:
    """Where the IMAP mailbox is and who logs in (the password is kept apart, never shown)."""

    host: str
    port: int
    implicit_tls: bool
    user: str
    folder: str

    @classmethod
    def parse(cls, url: str) -> tuple[ImapAddress, str | None]:
        """The address and the password written in the URL, if any; ConfigError if unusable."""
        parts = urlsplit(url)
        implicit = parts.scheme.lower() == "imaps"
        try:
            port = parts.port or (993 if implicit else 143)
        except ValueError:
            raise ConfigError("MAILER_BOUNCE_MAILBOX: the port is not a number") from None
        if not parts.hostname or not parts.username:
            raise ConfigError(
                "MAILER_BOUNCE_MAILBOX must name a user and a host: imaps://user@host/INBOX"
            )
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        address = cls(parts.hostname, port, implicit, unquote(parts.username), folder)
        return address, unquote(parts.password) if parts.password else None


class ImapInbox:
    """An IMAP folder of reports; connects on first use."""

    def __init__(self, address: ImapAddress, password: str, max_bytes: int) -> None:
        self.address = address
        self._password = password
        self.max_bytes = max_bytes
        self._client: IMAPClient | None = None

    @classmethod
    def from_url(cls, url: str, password: str | None, max_bytes: int) -> ImapInbox:
        """From ``MAILER_BOUNCE_MAILBOX`` and ``MAILER_BOUNCE_PASSWORD`` (which wins)."""
        address, in_url = ImapAddress.parse(url)
        secret = password or in_url
        if not secret:
            raise ConfigError("set MAILER_BOUNCE_PASSWORD for the IMAP bounce mailbox")
        return cls(address, secret, max_bytes)

    def messages(self, limit: int) -> Iterator[Incoming]:
        """Up to ``limit`` unseen messages, oldest first, each cut at ``max_bytes``."""
        client = self._connected()
        with self._guard():
            uids = sorted(int(uid) for uid in client.search(["UNSEEN"]))[:limit]
        part = f"BODY.PEEK[]<0.{self.max_bytes}>"
        for uid in uids:
            with self._guard():
                fetched = client.fetch([uid], [_SIZE, part]).get(uid)
            if fetched is None:  # expunged meanwhile
                continue
            data = bytes(fetched.get(_BODY) or b"")[: self.max_bytes]
            size = int(fetched.get(_SIZE) or len(data))
            yield Incoming(str(uid), data, size > len(data))

    def done(self, key: str) -> None:
        """Flag ``\\Seen``."""
        with self._guard():
            self._connected().add_flags([int(key)], [SEEN])

    def keep(self, key: str) -> None:
        """Flag ``\\Seen`` and ``\\Flagged``: a person should look at it."""
        with self._guard():
            self._connected().add_flags([int(key)], [SEEN, FLAGGED])

    def close(self) -> None:
        """Log out (quietly: the work is done either way)."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except (IMAPClientError, OSError):
                log.debug("IMAP logout failed", exc_info=True)

    def _connected(self) -> IMAPClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> IMAPClient:
        where = f"{self.address.host}:{self.address.port}"
        context = ssl.create_default_context()
        try:
            client = IMAPClient(
                self.address.host,
                self.address.port,
                ssl=self.address.implicit_tls,
                ssl_context=context,
                timeout=TIMEOUT,
            )
            if not self.address.implicit_tls:
                client.starttls(context)
            client.login(self.address.user, self._password)
            client.select_folder(self.address.folder)
        except (IMAPClientError, OSError) as exc:
            raise MailboxError(f"bounce mailbox {where}: {_reason(exc)}") from None
        return client

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except (IMAPClientError, OSError) as exc:
            self._client = None  # the connection is no good any more
            raise MailboxError(f"bounce mailbox: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
