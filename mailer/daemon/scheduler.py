"""APScheduler wiring: a fetch job and a due-digest job that only trigger idempotent work."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    JobEvent,
)
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
# The scheduler logs through this logger (a child of APScheduler's, so configured with it),
# which leaves out its warning about a skipped tick: see ``_StillRunning``.
SCHEDULER_LOG = logging.getLogger("apscheduler.scheduler.mailer")
_SKIPPED_TICK = "maximum number of running instances reached"


class _WithoutSkippedTicks(logging.Filter):
    """Drops APScheduler's warning that a tick found its job still running."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _SKIPPED_TICK not in str(record.msg)


class _StillRunning:
    """Says once per run of a job that its ticks are being skipped, not once a tick.

    A due-digest run at a million subscribers lasts an hour; APScheduler warned every minute
    that the next tick was skipped, which is expected (one instance a job; the running one
    takes whatever became due meanwhile) and buried the log. One INFO line per long run.
    """

    def __init__(self) -> None:
        self._said: set[str] = set()

    def __call__(self, event: JobEvent) -> None:
        if event.code != EVENT_JOB_MAX_INSTANCES:
            self._said.discard(event.job_id)  # the run ended: the next long one is news
        elif event.job_id not in self._said:
            self._said.add(event.job_id)
            log.info("job %r still running: its next ticks are skipped until it ends", event.job_id)


if not any(isinstance(f, _WithoutSkippedTicks) for f in SCHEDULER_LOG.filters):
    SCHEDULER_LOG.addFilter(_WithoutSkippedTicks())


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
        logger=SCHEDULER_LOG,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": MISFIRE_GRACE_SECONDS,
        },
    )
    scheduler.add_listener(
        _StillRunning(), EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
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
