"""A long due-digest run is said once, not warned about at every skipped tick."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from mailer.daemon.scheduler import build_scheduler


async def _ticks_during_two_long_runs() -> int:
    """Two runs of the due job, each overlapped by three ticks; how many runs started."""
    release = asyncio.Event()
    started = 0

    async def due() -> None:
        nonlocal started
        started += 1
        await release.wait()

    async def nothing() -> None:
        return None

    scheduler = build_scheduler(fetch_job=nothing, due_job=due, fetch_cron="0 0 1 1 *")
    scheduler.start()
    job = scheduler.get_job("due")
    assert job is not None
    try:
        for _ in range(2):
            release.clear()
            for _ in range(4):  # the first tick starts a run, the next three find it running
                job.modify(next_run_time=datetime.now(UTC))
                scheduler.wakeup()
                await asyncio.sleep(0.05)
            release.set()
            await asyncio.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)
    return started


def test_skipped_ticks_are_said_once_per_long_run(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    started = asyncio.run(_ticks_during_two_long_runs())
    assert started == 2
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "maximum number of running instances" in m]
    said = [m for m in messages if "still running" in m]
    assert said == ["job 'due' still running: its next ticks are skipped until it ends"] * 2
