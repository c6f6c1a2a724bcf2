"""One whole cycle as a command runs it: fetch every source, plan what is due, send it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date

import httpx

from mailer.config import Settings
from mailer.context import Context
from mailer.delivery import (
    DeliveryReport,
    OutboxFeed,
    RetryPolicy,
    Transport,
    transport_from_settings,
)
from mailer.pipeline.fetch import SourceOutcome, fetch_all, make_sources
from mailer.pipeline.plan import PlanReport, plan
from mailer.pipeline.send import send_queued

log = logging.getLogger(__name__)


@dataclass
class CycleReport:
    """What one fetch → plan → send cycle did."""

    fetched: list[SourceOutcome] = field(default_factory=list)
    planned: PlanReport = field(default_factory=PlanReport)
    delivered: DeliveryReport | None = None


def http_client(settings: Settings) -> httpx.AsyncClient:
    """The shared HTTP client for sources (each request names us: see ``HttpPolicy``)."""
    return httpx.AsyncClient(timeout=settings.http_timeout, follow_redirects=True)


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
    feed: OutboxFeed | None = None,
) -> tuple[PlanReport, DeliveryReport]:
    """Plan due digests and send every outbox row that is due, sending while planning goes on.

    The planner runs in a thread and commits a chunk of digests at a time; the sender claims
    each chunk as soon as it is committed, so the first digests leave seconds after the start
    rather than after the last subscriber is planned. ``stop`` ends both: the planner after
    its current chunk (what it committed stays in the outbox for the next run), the sender
    as ``send_queued`` does. A planner error is raised once what it did commit is sent.
    ``feed`` (tests) is the channel between the two.
    """
    stop = stop or asyncio.Event()
    feed = feed or OutboxFeed()
    # Planning is synchronous database work: off the loop, which sends (and may serve the web).
    planning = asyncio.create_task(asyncio.to_thread(_plan_into, ctx, force, feed))
    halting = asyncio.create_task(_halt_on(stop, feed))
    try:
        delivered = await send_queued(ctx, transport, policy, stop=stop, feed=feed)
    except BaseException:
        feed.halt()  # the sender failed: stop planning at the next chunk, keep what is planned
        await asyncio.gather(planning, return_exceptions=True)
        raise
    finally:
        halting.cancel()
        if stop.is_set():  # the halting task may not have run yet
            feed.halt()
    return await planning, delivered


def _plan_into(ctx: Context, force: bool, feed: OutboxFeed) -> PlanReport:
    """Plan, announcing each committed chunk on ``feed``, and close it however planning ends."""
    try:
        return plan(ctx, force=force, feed=feed)
    finally:
        feed.close()


async def _halt_on(stop: asyncio.Event, feed: OutboxFeed) -> None:
    await stop.wait()
    feed.halt()


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
