"""A real SMTP server for tests (aiosmtpd in a thread) that can be told to fail on purpose."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

FaultStage = Literal["mail", "rcpt", "data"]
DROP = "drop"  # a reply that closes the connection instead of answering


@dataclass(frozen=True, slots=True)
class Received:
    """One accepted message: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes

    @property
    def message_id(self) -> str:
        """The Message-ID header."""
        return str(self.message["Message-ID"])


@dataclass(slots=True)
class Fault:
    """Answer ``reply`` (or drop the connection) at ``stage``; ``addresses`` None means anyone.

    At ``mail`` the sender is matched, at ``rcpt`` the recipient, at ``data`` any recipient.
    ``fraction`` of matching commands fail (drawn from the server's seeded generator);
    ``times`` caps how often the fault fires.
    """

    stage: FaultStage
    reply: str
    addresses: frozenset[str] | None = None
    fraction: float = 1.0
    times: int | None = None
    fired: int = 0

    def applies(self, stage: str, addresses: Iterable[str]) -> bool:
        if stage != self.stage or (self.times is not None and self.fired >= self.times):
            return False
        if self.addresses is None:
            return True
        return any(address.lower() in self.addresses for address in addresses)


@dataclass
class _Stats:
    connections: int = 0
    mail: int = 0
    refused: dict[str, int] = field(default_factory=dict)


class SmtpServer:
    """aiosmtpd on 127.0.0.1 and a free port; use as a context manager.

    ``tls_context`` offers STARTTLS (``require_starttls`` forces it), ``ssl_context`` makes
    the port speak implicit TLS; ``users`` ({login: password}) enables AUTH.
    ``store=False`` only counts messages (for load tests); ``idle_timeout`` hangs up on
    clients idle that long, as real servers do.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        store: bool = True,
        idle_timeout: float = 300.0,
        smtputf8: bool = True,  # aiosmtpd offers SMTPUTF8 unless told not to
    ) -> None:
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.store = store
        self.users = users
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._delays: dict[str, float] = {}
        self._received: list[Received] = []
        self._count = 0
        self.stats = _Stats()
        kwargs: dict[str, Any] = {"timeout": idle_timeout, "enable_SMTPUTF8": smtputf8}
        if users is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            kwargs["auth_require_tls"] = tls_context is not None or ssl_context is not None
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            ssl_context=ssl_context,
            server_hostname="localhost",
            **kwargs,
        )

    def __enter__(self) -> SmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start listening (in a thread)."""
        self._controller.start()

    def stop(self) -> None:
        """Stop the server thread."""
        self._controller.stop()

    def fail(
        self,
        stage: FaultStage,
        reply: str,
        *,
        addresses: Iterable[str] | None = None,
        fraction: float = 1.0,
        times: int | None = None,
    ) -> Fault:
        """Add a fault, e.g. ``fail("rcpt", "550 5.1.1 no such user", addresses=[...])``."""
        chosen = None if addresses is None else frozenset(a.lower() for a in addresses)
        fault = Fault(stage, reply, chosen, fraction, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def delay(self, stage: FaultStage, seconds: float) -> None:
        """Answer every command at ``stage`` only after ``seconds`` (a slow server); 0 undoes."""
        with self._lock:
            self._delays[stage] = seconds

    def clear_faults(self) -> None:
        """Answer everything with 250 again."""
        with self._lock:
            self._faults.clear()

    @property
    def messages(self) -> list[Received]:
        """A snapshot of the accepted messages, in arrival order."""
        with self._lock:
            return list(self._received)

    @property
    def faults(self) -> list[Fault]:
        """The configured faults (their ``fired`` counts say how often they struck)."""
        with self._lock:
            return list(self._faults)

    @property
    def count(self) -> int:
        """How many messages were accepted (also when not stored)."""
        with self._lock:
            return self._count

    def received_by(self, address: str) -> list[Received]:
        """The accepted messages whose envelope names ``address``."""
        wanted = address.lower()
        return [m for m in self.messages if wanted in (r.lower() for r in m.rcpt_tos)]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` messages were accepted; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    # -- called from the server thread -------------------------------------------------------

    async def _pause(self, stage: str) -> None:
        with self._lock:
            seconds = self._delays.get(stage, 0.0)
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _fault_for(self, stage: str, addresses: Iterable[str]) -> str | None:
        addresses = list(addresses)
        with self._lock:
            for fault in self._faults:
                if fault.applies(stage, addresses) and self._rng.random() < fault.fraction:
                    fault.fired += 1
                    for address in addresses:
                        self.stats.refused[address] = self.stats.refused.get(address, 0) + 1
                    return fault.reply
        return None

    def _accept(self, envelope: Envelope) -> int:
        raw = bytes(envelope.original_content or b"")
        with self._lock:
            self._count += 1
            if self.store:
                parsed = message_from_bytes(raw, policy=default_policy)
                assert isinstance(parsed, EmailMessage)
                rcpts = tuple(envelope.rcpt_tos)
                self._received.append(Received(str(envelope.mail_from), rcpts, parsed, raw))
            return self._count

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.users is not None:
            login, password = data.login.decode(), data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


class _Handler:
    """aiosmtpd hooks that consult the server's faults."""

    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.owner.stats.mail += 1
        await self.owner._pause("mail")
        reply = self.owner._fault_for("mail", [address])
        if reply is not None:
            return _answer(server, reply)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self.owner._pause("rcpt")
        reply = self.owner._fault_for("rcpt", [address])
        if reply is not None:
            return _answer(server, reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.owner._pause("data")
        reply = self.owner._fault_for("data", envelope.rcpt_tos)
        if reply is not None:
            return _answer(server, reply)
        number = self.owner._accept(envelope)
        return f"250 2.0.0 Ok: queued as {number}"

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        if session.host_name is None:  # first EHLO on this connection, not the one after STARTTLS
            self.owner.stats.connections += 1
        session.host_name = hostname
        return responses


def _answer(server: SMTP, reply: str) -> str:
    if reply == DROP:
        assert server.transport is not None
        server.transport.close()
        return "421 4.4.2 connection dropped"
    return reply


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed_context(tmp_dir: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A (server, client) pair of TLS contexts for ``localhost`` from a fresh self-signed cert."""
    import subprocess

    cert, key = f"{tmp_dir}/cert.pem", f"{tmp_dir}/key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=cert)
    return server, client
