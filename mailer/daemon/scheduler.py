"""APScheduler wiring: a fetch job and a due-digest job that only trigger idempotent work."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailer.errors import ConfigError

log = logging.getLogger(__name__)

# A job that missed its moment (daemon busy or suspended) still runs if it is this late;
# every job decides what to do from the database, so running late is always safe.
MISFIRE_GRACE_SECONDS = 3600
DUE_INTERVAL_SECONDS = 60
PRUNE_INTERVAL_HOURS = 24


def fetch_trigger(cron: str) -> CronTrigger:
    """The fetch job's trigger from a five-field UTC cron expression."""
    try:
        return CronTrigger.from_crontab(cron, timezone="UTC")
    except ValueError as exc:
        raise ConfigError(f"MAILER_FETCH_CRON {cron!r} is not a cron expression: {exc}") from exc


def build_scheduler(
    *,
    fetch_job: Callable[[], Awaitable[object]],
    due_job: Callable[[], Awaitable[object]],
    fetch_cron: str,
    first_run: datetime | None = None,
    bounce_job: Callable[[], Awaitable[object]] | None = None,
    bounce_interval: int = 300,
    prune_job: Callable[[], Awaitable[object]] | None = None,
) -> AsyncIOScheduler:
    """An in-memory scheduler with the jobs; coalesced, one instance each.

    ``bounce_job`` (reading the bounce mailbox) runs every ``bounce_interval`` seconds when
    given, the first time at ``first_run``; ``prune_job`` (retention) at ``first_run`` and
    then once a day.
    """
    scheduler = AsyncIOScheduler(
        timezone="UTC",
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )
    scheduler.add_job(fetch_job, fetch_trigger(fetch_cron), id="fetch", name="fetch sources")
    scheduler.add_job(
        due_job,
        IntervalTrigger(seconds=DUE_INTERVAL_SECONDS, timezone="UTC"),
        id="due",
        name="send due digests",
        next_run_time=first_run,
    )
    if bounce_job is not None:
        scheduler.add_job(
            bounce_job,
            IntervalTrigger(seconds=bounce_interval, timezone="UTC"),
            id="bounces",
            name="read the bounce mailbox",
            next_run_time=first_run,
        )
    if prune_job is not None:
        scheduler.add_job(
            prune_job,
            IntervalTrigger(hours=PRUNE_INTERVAL_HOURS, timezone="UTC"),
            id="prune",
            name="delete digests older than the retention",
            next_run_time=first_run,
        )
    return scheduler
