"""The daemon: the scheduler's jobs and/or the web server, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from mailer.config import Settings
from mailer.context import Context
from mailer.daemon import tuning
from mailer.daemon.scheduler import build_scheduler
from mailer.daemon.web_processes import bind
from mailer.delivery import RetryPolicy, Transport, stop_on_signals, transport_from_settings
from mailer.delivery.inboxes import open_inbox
from mailer.errors import ConfigError, MailerError, SourceSpecError
from mailer.ops.prune import prune
from mailer.pipeline.cycle import fetch_now, send_now
from mailer.pipeline.fetch import make_sources
from mailer.subscribers.bounce_mailbox import check_mailbox

log = logging.getLogger(__name__)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to us (we stop it ourselves)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    ctx: Context,
    settings: Settings,
    *,
    scheduler: bool,
    web: bool,
    host: str,
    port: int,
    demo: bool = False,
) -> None:
    """The daemon: the scheduler's jobs and/or the web server until SIGTERM or SIGINT.

    ``demo`` makes the web app show confirmation links on the page (demo mail only reaches
    the local Maildir).
    """
    sock = bind(host, port) if web else None  # a taken port fails the start, not later
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await _serve_until(ctx, settings, stop, scheduler=scheduler, sock=sock, demo=demo)


async def _serve_until(
    ctx: Context,
    settings: Settings,
    stop: asyncio.Event,
    *,
    scheduler: bool,
    sock: socket.socket | None,
    demo: bool,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        busy = asyncio.Lock()
        if scheduler:
            transport = await stack.enter_async_context(transport_from_settings(settings))
            _start_jobs(ctx, settings, transport, _Jobs(stop, busy), stack)
        if sock is not None:
            tasks.append(asyncio.create_task(_web(ctx, settings, sock, stop, demo)))
        await stop.wait()
        log.info("shutting down: finishing in-flight work")
        async with busy:  # a running job stops claiming, finishes its sends, then we close
            await asyncio.gather(*tasks)


@dataclass(frozen=True)
class _Jobs:
    stop: asyncio.Event
    busy: asyncio.Lock


def _start_jobs(
    ctx: Context,
    settings: Settings,
    transport: Transport,
    jobs: _Jobs,
    stack: contextlib.AsyncExitStack,
) -> None:
    policy = RetryPolicy.from_settings(settings)
    if settings.bounce_mailbox:
        open_inbox(settings).close()  # a bad MAILER_BOUNCE_MAILBOX stops the start, not a job

    check_sources(settings)  # a bad MAILER_SOURCES stops the start, not every tick

    async def fetch_job() -> None:
        async with jobs.busy:
            if jobs.stop.is_set():
                return
            try:
                await fetch_now(ctx, settings)
            except Exception as exc:  # every source records its own failure; this is a bug
                log.error("fetch job failed: %s: %s", type(exc).__name__, exc)

    async def due_job() -> None:
        async with jobs.busy:
            if not jobs.stop.is_set():
                with tuning.tuned():
                    await _send_and_log(ctx, transport, policy, jobs.stop)

    async def bounce_job() -> None:
        async with jobs.busy:
            if not jobs.stop.is_set():
                await _read_bounces(ctx, settings)

    async def prune_job() -> None:
        async with jobs.busy:
            if not jobs.stop.is_set():
                await _prune(ctx, settings)

    sched = build_scheduler(
        fetch_job=fetch_job,
        due_job=due_job,
        fetch_cron=settings.fetch_cron,
        first_run=ctx.clock(),
        bounce_job=bounce_job if settings.bounce_mailbox else None,
        bounce_interval=settings.bounce_interval_seconds,
        prune_job=prune_job,
    )
    sched.modify_job("fetch", next_run_time=ctx.clock())  # fetch once at start, then on cron
    sched.start()
    stack.callback(sched.shutdown, wait=False)


async def _send_and_log(
    ctx: Context, transport: Transport, policy: RetryPolicy, stop: asyncio.Event
) -> None:
    planned, delivered = await send_now(ctx, transport, policy, stop=stop)
    if planned.queued or delivered.sent or delivered.failed:
        log.info(
            "due digests planned=%d sent=%d retried=%d failed=%d bounced=%d",
            planned.queued, delivered.sent, delivered.retried,
            delivered.failed, delivered.bounced,
        )  # fmt: skip


def check_sources(settings: Settings) -> None:
    """ConfigError naming the first MAILER_SOURCES entry that is not a usable source."""
    try:
        make_sources(settings)
    except SourceSpecError as exc:
        raise ConfigError(f"MAILER_SOURCES: {exc}") from None


async def _read_bounces(ctx: Context, settings: Settings) -> None:
    """One reading of the bounce mailbox; a failure is logged and the next run tries again."""
    try:
        await asyncio.to_thread(check_mailbox, ctx, settings)
    except (MailerError, SQLAlchemyError) as exc:
        log.error("bounce mailbox not read: %s", str(exc).splitlines()[0])


async def _prune(ctx: Context, settings: Settings) -> None:
    """Delete what is older than the retention; a failure is logged and tomorrow tries again."""
    try:
        await asyncio.to_thread(
            prune, ctx.session_factory, retention_days=settings.retention_days, now=ctx.clock()
        )
    except (MailerError, SQLAlchemyError) as exc:
        log.error("prune failed: %s", str(exc).splitlines()[0])


async def _web(
    ctx: Context, settings: Settings, sock: socket.socket, stop: asyncio.Event, demo: bool
) -> None:
    from mailer.daemon.web_processes import uvicorn_options, warm
    from mailer.web.app import create_app

    app = create_app(
        ctx,
        transport_factory=lambda: transport_from_settings(settings),
        demo=demo,
        secret_key=settings.effective_secret_key(),
    )
    warm(app)
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, **uvicorn_options(settings))
    server = _QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    log.info("web server on http://%s:%d", host, port)
    await stop.wait()
    server.should_exit = True
    await serving
