"""A real threaded HTTP server on 127.0.0.1 serving canned responses and recording requests.

Usage (sync or async tests alike, the server runs in its own thread)::

    with LocalHTTPServer() as server:
        server.route("/api/daily_papers", Canned(body=b"[]", headers={"ETag": '"v1"'}))
        server.route("/flaky", Canned(status=503), Canned(body=b"ok"))   # a sequence
        url = server.url("/api/daily_papers")
        ...
        assert server.requests[0].query == {"date": "2025-08-06"}

A route's responses are served in order; the last one repeats. ``route_fn`` takes a function of
the recorded request instead (for conditional GETs). ``Canned(drop=True)`` closes the
connection without answering; ``Canned(delay=...)`` answers late (timeouts).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Canned:
    """One canned answer."""

    body: bytes | str = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    drop: bool = False
    drip: float = 0.0
    chunks: Callable[[], Iterable[bytes]] | None = None
    length: int | None = None

    @classmethod
    def json(cls, value: Any, status: int = 200, **headers: str) -> Canned:
        """A JSON answer."""
        return cls(json.dumps(value).encode(), status, headers, "application/json")

    def encoded(self) -> bytes:
        """The body as bytes."""
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    at: float

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name."""
        return self.headers.get(name.lower())


Responder = Callable[[RecordedRequest], Canned]


class LocalHTTPServer:
    """A threaded HTTP/1.1 server on a free port of 127.0.0.1, used as a context manager."""

    def __init__(self) -> None:
        self._routes: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        # A short poll interval keeps shutdown (and so every test's teardown) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path``."""
        return self.base_url + path

    def route(self, path: str, *responses: Canned) -> None:
        """Serve ``responses`` in order at ``path`` (any query); the last one repeats."""
        queue = list(responses) or [Canned()]
        state = {"next": 0}

        def respond(_: RecordedRequest) -> Canned:
            with self._lock:
                index = min(state["next"], len(queue) - 1)
                state["next"] += 1
            return queue[index]

        self._routes[path] = respond

    def route_fn(self, path: str, responder: Responder) -> None:
        """Answer requests at ``path`` with ``responder(request)``."""
        self._routes[path] = responder

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests for one path."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _answer(self, request: RecordedRequest) -> Canned:
        with self._lock:
            self.requests.append(request)
        responder = self._routes.get(request.path)
        if responder is None:
            return Canned(body=b"not found", status=404, content_type="text/plain")
        return responder(request)

    def __enter__(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalHTTPServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out or hung up is what some tests are about


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._handle()

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = RecordedRequest(self.command, parts.path, query, headers, time.monotonic())
        canned = self.server.owner._answer(request)
        if canned.delay:
            time.sleep(canned.delay)
        if canned.drop:
            self.close_connection = True
            self.connection.close()
            return
        self._send(canned)

    def _send(self, canned: Canned) -> None:
        body = canned.encoded()
        self.send_response(canned.status)
        if canned.content_type:
            self.send_header("Content-Type", canned.content_type)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        no_body = canned.status in (204, 304) or self.command == "HEAD"
        if canned.chunks is not None and not no_body:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._send_chunked(canned.chunks())
            return
        length = canned.length if canned.length is not None else len(body)
        self.send_header("Content-Length", "0" if no_body else str(length))
        self.end_headers()
        if no_body:
            return
        if canned.drip:
            self._drip(body, canned.drip)
        else:
            self.wfile.write(body)

    def _drip(self, body: bytes, interval: float) -> None:
        """One byte at a time: each read arrives well within any per-read timeout."""
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            time.sleep(interval)

    def _send_chunked(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean
