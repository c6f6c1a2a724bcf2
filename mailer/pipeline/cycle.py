"""One whole cycle as a command runs it: fetch every source, plan what is due, send it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date

import httpx

from mailer.config import Settings
from mailer.context import Context
from mailer.delivery import DeliveryReport, RetryPolicy, Transport, transport_from_settings
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
