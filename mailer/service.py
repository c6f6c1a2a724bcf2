"""Running the product: one cycle (``run --once``), or the daemon (scheduler and/or web)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date

import httpx
import uvicorn

from mailer.config import Settings
from mailer.delivery import (
    DeliveryReport,
    RetryPolicy,
    Transport,
    stop_on_signals,
    transport_from_settings,
)
from mailer.pipeline import (
    Context,
    SourceOutcome,
    fetch_all,
    make_sources,
    plan,
    send_queued,
)
from mailer.planning import PlanReport
from mailer.scheduler import build_scheduler
from mailer.sources.http import user_agent_for

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one fetch → plan → send cycle did."""

    fetched: list[SourceOutcome] = field(default_factory=list)
    planned: PlanReport = field(default_factory=PlanReport)
    delivered: DeliveryReport | None = None


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The shared HTTP client for sources: a project User-Agent and a timeout."""
    return httpx.AsyncClient(
        timeout=settings.http_timeout,
        headers={"User-Agent": user_agent_for(settings.base_url)},
        follow_redirects=True,
    )


async def fetch_now(
    ctx: Context, settings: Settings, specs: list[str] | None = None, day: date | None = None
) -> list[SourceOutcome]:
    """Poll the configured sources (or ``specs``) once."""
    sources = make_sources(settings, specs)
    async with http_client(settings) as client:
        return await fetch_all(ctx, sources, client, day)


async def send_now(
    ctx: Context,
    transport: Transport,
    policy: RetryPolicy,
    *,
    force: bool = False,
    stop: asyncio.Event | None = None,
) -> tuple[PlanReport, DeliveryReport]:
    """Plan due digests, then send every outbox row that is due."""
    # Planning is synchronous database work: keep it off the loop the web server shares.
    planned = await asyncio.to_thread(plan, ctx, force=force)
    delivered = await send_queued(ctx, transport, policy, stop=stop)
    return planned, delivered


async def run_cycle(
    ctx: Context,
    settings: Settings,
    *,
    force: bool = False,
    stop: asyncio.Event | None = None,
) -> CycleReport:
    """Fetch every source, plan what is due, send it: ``mailer run --once``.

    ``stop`` set (by a signal, say) ends the sending: messages in flight finish, the rest
    are handed back.
    """
    report = CycleReport(fetched=await fetch_now(ctx, settings))
    async with transport_from_settings(settings) as transport:
        report.planned, report.delivered = await send_now(
            ctx, transport, RetryPolicy.from_settings(settings), force=force, stop=stop
        )
    return report


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
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await _serve_until(
            ctx, settings, stop, scheduler=scheduler, web=web, host=host, port=port, demo=demo
        )


async def _serve_until(
    ctx: Context,
    settings: Settings,
    stop: asyncio.Event,
    *,
    scheduler: bool,
    web: bool,
    host: str,
    port: int,
    demo: bool,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        tasks: list[asyncio.Task[None]] = []
        busy = asyncio.Lock()
        if scheduler:
            transport = await stack.enter_async_context(transport_from_settings(settings))
            _start_jobs(ctx, settings, transport, _Jobs(stop, busy), stack)
        if web:
            tasks.append(asyncio.create_task(_web(ctx, settings, (host, port), stop, demo)))
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

    async def fetch_job() -> None:
        async with jobs.busy:
            if not jobs.stop.is_set():
                await fetch_now(ctx, settings)

    async def due_job() -> None:
        async with jobs.busy:
            if not jobs.stop.is_set():
                await _send_and_log(ctx, transport, policy, jobs.stop)

    sched = build_scheduler(
        fetch_job=fetch_job,
        due_job=due_job,
        fetch_cron=settings.fetch_cron,
        first_run=ctx.clock(),
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


async def _web(
    ctx: Context, settings: Settings, where: tuple[str, int], stop: asyncio.Event, demo: bool
) -> None:
    from mailer.web.app import create_app

    app = create_app(
        ctx,
        transport_factory=lambda: transport_from_settings(settings),
        demo=demo,
        secret_key=settings.effective_secret_key(),
    )
    host, port = where
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    server = _QuietServer(config)
    serving = asyncio.create_task(server.serve())
    log.info("web server on http://%s:%d", host, port)
    await stop.wait()
    server.should_exit = True
    await serving
