"""``mailer web --workers N``: N web server processes sharing one listening socket.

The parent binds the socket, then starts each child with the spawn method (no state copied
from the parent: each builds its own database engine, context and app from the settings) and
hands it the socket; the kernel spreads connections over the children. The parent only
supervises: a child that dies is replaced (unless they keep dying), and SIGTERM or SIGINT
is passed on so each child finishes its requests in flight, as uvicorn does on SIGTERM.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from fastapi import FastAPI

from mailer.config import Settings
from mailer.daemon.tuning import freeze_heap
from mailer.errors import MailerError
from mailer.web.deps import Web

log = logging.getLogger(__name__)

STOP_SECONDS = 30.0  # how long children get to finish their requests after SIGTERM
RESTARTS = 5  # children that may die within RESTART_WINDOW before the parent gives up
RESTART_WINDOW = 60.0
BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    """The listening socket the web server accepts on; MailerError when it cannot be had
    (the port is taken, the address is not this machine's), before anything else starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise MailerError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn logs and whom it believes about the client's address.

    Its log records go through our handler (one masked line each, tracebacks folded), not
    its own. ``X-Forwarded-For`` is ignored unless ``MAILER_FORWARDED_ALLOW_IPS`` names the
    proxies that may set it: uvicorn would otherwise trust it from 127.0.0.1, so anything on
    the host could pick the address the per-IP throttles see.
    """
    trusted = settings.forwarded_allow_ips.strip()
    return {
        "log_level": "warning",
        "log_config": None,
        "proxy_headers": bool(trusted),
        "forwarded_allow_ips": trusted or None,
    }


def warm(app: FastAPI) -> None:
    """Build the app's search index in the background, then freeze the heap (``tuning``)."""
    web: Web = app.state.web
    web.catalog.index.warm(then=freeze_heap)


def child_main(settings: Settings, sock: socket.socket, number: int) -> None:
    """One web server process: its own engine, context and app, serving on ``sock``."""
    import uvicorn

    from mailer.context import make_context
    from mailer.db.session import make_engine, make_session_factory
    from mailer.delivery import transport_from_settings
    from mailer.logs import configure, secrets_of
    from mailer.web.app import create_app

    configure(settings.log_level, settings.log_format, secrets_of(settings))
    engine = make_engine(settings.database_url)
    ctx = make_context(settings, make_session_factory(engine))
    app = create_app(
        ctx,
        transport_factory=lambda: transport_from_settings(settings),
        secret_key=settings.effective_secret_key(),
    )
    warm(app)
    config = uvicorn.Config(app, access_log=False, **uvicorn_options(settings))
    log.info("web process %d serving (pid %d)", number, multiprocessing.current_process().pid)
    try:
        uvicorn.Server(config).run(sockets=[sock])  # SIGTERM / SIGINT end it gracefully
    finally:
        engine.dispose()


@dataclass
class _Supervisor:
    settings: Settings
    sock: socket.socket
    workers: int
    children: dict[int, BaseProcess] = field(default_factory=dict)
    deaths: list[float] = field(default_factory=list)
    stopping: bool = False

    def start(self, number: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        child = spawn.Process(
            target=child_main,
            args=(self.settings, self.sock, number),
            name=f"mailer-web-{number}",
        )
        child.start()
        self.children[number] = child

    def stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("shutting down %d web processes", len(self.children))
        self.stopping = True

    def watch(self) -> int:
        """Replace dead children until told to stop; the exit status of the whole."""
        while not self.stopping:
            wait([c.sentinel for c in self.children.values()], timeout=0.5)
            for number, child in list(self.children.items()):
                if child.is_alive() or self.stopping:
                    continue
                log.error("web process %d exited with %s; starting another", number, child.exitcode)
                now = time.monotonic()
                self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW] + [now]
                if len(self.deaths) > RESTARTS:
                    log.error("web processes keep exiting; giving up")
                    self.stopping = True
                    self.finish()
                    return 1
                self.start(number)
        self.finish()
        return 0

    def finish(self) -> None:
        for child in self.children.values():
            if child.is_alive() and child.pid is not None:
                child.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        deadline = time.monotonic() + STOP_SECONDS
        for child in self.children.values():
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join()


def serve_processes(settings: Settings, *, host: str, port: int, workers: int) -> int:
    """Serve the web app from ``workers`` processes until SIGTERM or SIGINT; the exit status."""
    sock = bind(host, port)
    supervisor = _Supervisor(settings, sock, workers)
    previous = {sig: signal.signal(sig, supervisor.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for number in range(1, workers + 1):
            supervisor.start(number)
        log.info("web server on http://%s:%d with %d processes", host, port, workers)
        return supervisor.watch()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
