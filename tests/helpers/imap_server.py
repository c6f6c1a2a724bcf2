"""A real IMAP server for tests: pymap (pure Python) in a subprocess, with a TLS certificate.

pymap offers STARTTLS on its port; implicit TLS (``imaps://``) is a small TLS-terminating
proxy in front of it. The certificate is made with the ``openssl`` command; clients trust it
through ``SSL_CERT_FILE``, as they would a private CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from imapclient import IMAPClient

USER, PASSWORD = "bounces", "imap-test-password-7f3a"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert, key)."""
    cert, key = directory / "imap-cert.pem", directory / "imap-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


class ImapServer:
    """pymap on ``port`` (STARTTLS) and a TLS proxy on ``tls_port``, one user, in memory."""

    def __init__(self, directory: Path) -> None:
        self.cert, self.key = make_certificate(directory)
        self.port, self.tls_port = free_port(), free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        command = [
            sys.executable, "-c", "from pymap.main import main; main()",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--cert", str(self.cert), "--key", str(self.key),
            "dict", "--demo-user", USER, "--demo-password", PASSWORD,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_until_listening()
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_proxy(), self._loop).result(timeout=30)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Close the proxy and finish its relays on its own loop: a pending relay left for the
        # garbage collector would run in whatever the main thread is doing at that moment.
        asyncio.run_coroutine_threadsafe(self._stop_proxy(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        if self._process is not None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=10)
            if self._process.poll() is None:
                self._process.kill()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 60  # pymap takes a few seconds to start under load
        while time.monotonic() < deadline:
            assert self._process is not None and self._process.poll() is None, "pymap died"
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.1)
        raise RuntimeError("pymap did not start")

    async def _start_proxy(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.tls_port, ssl=context
        )

    async def _stop_proxy(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass  # one side hung up
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def client(self) -> IMAPClient:
        """A logged-in client on the plain port (the test's own side, on loopback)."""
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=30)
        client.login(USER, PASSWORD)
        client.select_folder("INBOX")
        return client

    def append(self, data: bytes) -> None:
        """Deliver a message into INBOX, unseen."""
        client = self.client()
        try:
            client.append("INBOX", data)
        finally:
            client.logout()

    def flags(self) -> list[tuple[bytes, ...]]:
        """The flags of every message in INBOX, oldest first (without \\Recent)."""
        client = self.client()
        try:
            fetched = client.fetch(client.search(["ALL"]), ["FLAGS"])
        finally:
            client.logout()
        return [
            tuple(sorted(f for f in fetched[uid][b"FLAGS"] if f != b"\\Recent"))
            for uid in sorted(fetched)
        ]
