"""SMTP transport: a pool of reused aiosmtplib connections, an optional rate limit, TLS and auth."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import aiosmtplib
from aiosmtplib import SMTPStatus

from mailer.config import Settings
from mailer.delivery.ratelimit import TokenBucket
from mailer.delivery.refusal import SmtpPermanentError, SmtpTransientError, Stage
from mailer.delivery.transport import Outgoing, WireMessage
from mailer.errors import DeliveryError
from mailer.mail.wire import crlf_only

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]

# A pooled connection idle longer than this is probed with NOOP before use: servers drop idle
# clients, and finding out at MAIL time would turn a harmless reconnect into a retry.
IDLE_PROBE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to connect; ``concurrency`` connections, ``send_rate`` msg/s (0: no cap)."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: Security = "starttls"
    timeout: float = 30.0
    concurrency: int = 4
    send_rate: float = 0.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    local_hostname: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        """The configuration given by the ``MAILER_SMTP_*`` and ``MAILER_SEND_RATE`` settings."""
        if not settings.smtp_host:
            raise ValueError("MAILER_SMTP_HOST is not set")
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            security=settings.smtp_security,
            timeout=settings.smtp_timeout,
            concurrency=settings.smtp_concurrency,
            send_rate=settings.send_rate,
        )


def _client(config: SmtpConfig) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        username=config.username,
        password=config.password,
        timeout=config.timeout,
        use_tls=config.security == "tls",
        start_tls=config.security == "starttls",
        tls_context=config.tls_context,
        local_hostname=config.local_hostname,
    )


@dataclass(slots=True)
class _Pooled:
    client: aiosmtplib.SMTP
    used_at: float = 0.0


class SmtpTransport:
    """Sends over at most ``concurrency`` reused connections, reconnecting after a disconnect."""

    def __init__(
        self,
        config: SmtpConfig,
        *,
        client_factory: Callable[[SmtpConfig], aiosmtplib.SMTP] = _client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._factory = client_factory
        self._clock = clock
        self._idle: list[_Pooled] = []
        self._slots = asyncio.Semaphore(config.concurrency)
        self._bucket = TokenBucket(config.send_rate) if config.send_rate > 0 else None
        self.connects = 0  # how many connections were opened: pooling shows up here

    @property
    def concurrency(self) -> int:
        """How many messages may be in flight at once."""
        return self.config.concurrency

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Say QUIT on every idle connection."""
        idle, self._idle = self._idle, []
        for pooled in idle:
            try:
                await pooled.client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
            finally:
                pooled.client.close()
        # close() only schedules the socket's teardown: give the loop a turn to finish it, so a
        # loop that ends right after us (asyncio.run) does not leave half-closed sockets behind.
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    async def send(self, message: Outgoing, recipient: str) -> str | None:
        """Send to one recipient; returns the server's reply to DATA."""
        if self._bucket is not None:
            await self._bucket.acquire()
        async with self._slots:
            pooled = await self._checkout()
            try:
                errors, reply = await _send(pooled.client, message, recipient)
            except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
                self._checkin(pooled)
                raise _translate(exc) from exc
            self._checkin(pooled)
        refused = errors.get(recipient)
        if refused is not None:  # refusals may come back in the result rather than raised
            raise _reply_error(Stage.RCPT, refused.code, refused.message)
        return reply

    async def _checkout(self) -> _Pooled:
        while self._idle:
            pooled = self._idle.pop()
            if await self._alive(pooled):
                return pooled
        pooled = _Pooled(self._factory(self.config))
        try:
            await pooled.client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            pooled.client.close()
            raise _connect_error(exc, self.config) from exc
        self.connects += 1
        return pooled

    async def _alive(self, pooled: _Pooled) -> bool:
        if not pooled.client.is_connected:
            pooled.client.close()
            return False
        if self._clock() - pooled.used_at < IDLE_PROBE_SECONDS:
            return True
        try:
            await pooled.client.noop()
        except (aiosmtplib.SMTPException, OSError):
            pooled.client.close()
            return False
        return True

    def _checkin(self, pooled: _Pooled) -> None:
        if pooled.client.is_connected:
            pooled.used_at = self._clock()
            self._idle.append(pooled)
        else:
            pooled.client.close()


async def _send(
    client: aiosmtplib.SMTP, message: Outgoing, recipient: str
) -> tuple[dict[str, aiosmtplib.SMTPResponse], str]:
    if not isinstance(message, WireMessage):
        return await client.send_message(message, recipients=[recipient])
    return {}, await _send_wire(client, message, recipient)


async def _send_wire(client: aiosmtplib.SMTP, message: WireMessage, recipient: str) -> str:
    """MAIL, RCPT, DATA for bytes already in wire form; the reply to DATA.

    What ``sendmail`` does for one recipient, minus its extra pass over the whole message
    to measure it for SIZE: these bytes already have CRLF line endings.
    """
    if client.is_ehlo_or_helo_needed:  # capabilities (SIZE, SMTPUTF8) come with EHLO
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            await client.helo()  # a server without ESMTP: no extensions at all
    options: list[str] = []
    encoding = "ascii"
    if not (message.sender + recipient).isascii():
        if not client.supports_extension("smtputf8"):
            raise aiosmtplib.SMTPNotSupported("the server does not accept non-ASCII addresses")
        options, encoding = ["SMTPUTF8"], "utf-8"
    if client.supports_extension("size"):
        options.insert(0, f"SIZE={len(message.data)}")
    try:
        await _mail(client, message.sender, options, encoding)
        await _rcpt(client, recipient, encoding)
        return await _data(client, data_payload(message.data, crlf_checked=message.crlf_checked))
    except Exception:
        # A refusal, or an address the client would not send after MAIL was accepted: end
        # the transaction so the pooled connection is ready for the next message.
        if client.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.rset()
        raise


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_MAILBOX = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
"""A mailbox aiosmtplib's ``quote_address`` writes back as it is, in angle brackets.

A dot-atom local part at a host name: nearly every address. ``_mail`` and ``_rcpt`` skip
its parse (``email.utils``, about 10 us each, in the process whose time the connections wait
on); any other address goes through ``SMTP.mail`` and ``SMTP.rcpt`` as before.
"""


async def _mail(client: aiosmtplib.SMTP, sender: str, options: list[str], encoding: str) -> None:
    """``SMTP.mail``, without parsing a plain sender."""
    if not PLAIN_MAILBOX.fullmatch(sender):
        await client.mail(sender, options=options, encoding=encoding)
        return
    extra = [option.encode("ascii") for option in options]
    reply = await client.execute_command(b"MAIL", f"FROM:<{sender}>".encode(encoding), *extra)
    if reply.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)


async def _rcpt(client: aiosmtplib.SMTP, recipient: str, encoding: str) -> None:
    """``SMTP.rcpt``, without parsing a plain recipient."""
    if not PLAIN_MAILBOX.fullmatch(recipient):
        await client.rcpt(recipient, encoding=encoding)
        return
    reply = await client.execute_command(b"RCPT", f"TO:<{recipient}>".encode(encoding))
    if reply.code not in (SMTPStatus.completed, SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)


_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")
_DOT_LINE = re.compile(rb"\r\n\.")  # a line that starts with a period (after the first)


def data_payload(data: bytes, *, crlf_checked: bool = False) -> bytes:
    """What follows DATA for these message bytes: CRLF lines, dot-stuffed, ending ``.<CRLF>``.

    The same bytes aiosmtplib's ``data()`` would send (RFC 5321 §4.5.2), found with C-speed
    scans instead of two regular-expression passes over the whole message: a digest is
    already CRLF-only and rarely has a line that starts with a period, and those passes were
    about a third of the sending process's CPU. ``crlf_checked``: the caller knows the bytes
    pass ``crlf_only`` (written so, or checked by a render process): no scan for bare line ends.
    """
    if not crlf_checked and not crlf_only(data):  # a bare CR or LF somewhere
        data = _BARE_LINE_END.sub(b"\r\n", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    if _DOT_LINE.search(data) is not None:  # twice as fast as replace() finding nothing
        data = data.replace(b"\r\n.", b"\r\n..")
    return data + b".\r\n"


async def _data(client: aiosmtplib.SMTP, payload: bytes) -> str:
    """DATA, then the prepared payload; the server's reply to it.

    ``SMTP.data()`` would normalise and dot-stuff the message again. A pooled connection
    carries one transaction at a time, so writing the payload and reading the reply
    directly is safe; a timeout or a lost connection closes the client, as ``data()`` does.
    """
    started = await client.execute_command(b"DATA")
    if started.code != SMTPStatus.start_input:
        raise aiosmtplib.SMTPDataError(started.code, started.message)
    protocol = client.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    try:
        protocol.write(payload)
        reply = await protocol.read_response(timeout=client.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()
        raise
    if reply.code != SMTPStatus.completed:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply.message


def _reply_error(stage: Stage, code: int, text: str) -> DeliveryError:
    detail = f"{stage.value.upper()} refused: {code} {text}".strip()
    if 500 <= code < 600:
        return SmtpPermanentError(detail, code, stage)
    return SmtpTransientError(detail, code, stage)


def _translate(exc: Exception) -> DeliveryError:
    """Map an aiosmtplib failure during a send to our error tree."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        first = exc.recipients[0]
        return _reply_error(Stage.RCPT, first.code, first.message)
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _reply_error(Stage.RCPT, exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return _reply_error(Stage.MAIL, exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _reply_error(Stage.DATA, exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return SmtpPermanentError(f"553 5.6.7 {exc.message}", 553, Stage.DATA)
    if isinstance(exc, ValueError):
        # The client refused to send it (a message or address it could not encode or found
        # unsafe; any open transaction was reset): our fault, so the digest fails without
        # counting a bounce against the subscriber.
        return SmtpPermanentError(f"could not send this message: {exc}", None, Stage.MAIL)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # A reply to some other command (RSET, EHLO after a reset): not about this recipient.
        return SmtpTransientError(f"{exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SmtpTransientError(f"timed out: {exc}")
    return SmtpTransientError(f"connection lost: {exc}")


def _connect_error(exc: Exception, config: SmtpConfig) -> DeliveryError:
    where = f"{config.host}:{config.port}"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        # Wrong credentials are the operator's to fix: retry (until the deadline), never bounce.
        log.error("SMTP login to %s as %r refused: %s", where, config.username, exc.code)
        return SmtpTransientError(f"login refused by {where}: {exc.code}", exc.code, Stage.CONNECT)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{where} answered {exc.code} {exc.message}"
        return SmtpTransientError(text, exc.code, Stage.CONNECT)
    return SmtpTransientError(f"cannot connect to {where}: {exc}", None, Stage.CONNECT)
