"""Process-wide tuning is applied by the command runtime only, and undone afterwards."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from mailer.cli import commands as cli_app
from mailer.daemon import tuning
from mailer.db.session import SessionFactory
from mailer.delivery import ClaimedDigest
from mailer.pipeline.render_pool import RenderPool
from tests.helpers.delivery_worker import build_message, seed
from tests.helpers.smtp_server import SmtpServer
from tests.test_delivery import Clock, deliver, transport_for
from tests.test_render_pool import _settings


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def default_gc() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_tuned_sets_and_restores_gc_and_switch_interval(default_gc: None) -> None:
    interval = sys.getswitchinterval()
    assert interval > tuning.SWITCH_INTERVAL  # Python's default, 5 ms
    with pytest.raises(RuntimeError), tuning.tuned():
        assert gc.get_threshold() == (tuning.YOUNG_THRESHOLD, 10, 10)
        assert sys.getswitchinterval() == tuning.SWITCH_INTERVAL
        raise RuntimeError
    assert (gc.get_threshold(), sys.getswitchinterval()) == ((700, 10, 10), interval)


def test_tuned_never_lowers_a_higher_gc_threshold(default_gc: None) -> None:
    gc.set_threshold(10 * tuning.YOUNG_THRESHOLD, 5, 5)
    with tuning.tuned():
        assert gc.get_threshold() == (10 * tuning.YOUNG_THRESHOLD, 5, 5)
    assert gc.get_threshold() == (10 * tuning.YOUNG_THRESHOLD, 5, 5)


def test_overlapping_runs_restore_only_when_the_last_ends(default_gc: None) -> None:
    interval = sys.getswitchinterval()
    with tuning.tuned():
        with tuning.tuned():
            assert sys.getswitchinterval() == tuning.SWITCH_INTERVAL
        assert sys.getswitchinterval() == tuning.SWITCH_INTERVAL
        assert gc.get_threshold()[0] == tuning.YOUNG_THRESHOLD
    assert (gc.get_threshold(), sys.getswitchinterval()) == ((700, 10, 10), interval)


def _intervals_seen_while_sending(
    session_factory: SessionFactory, smtp: SmtpServer, *, tuned: bool
) -> list[float]:
    seed(session_factory, 3)
    seen: list[float] = []

    def build(claimed: ClaimedDigest) -> EmailMessage:
        seen.append(sys.getswitchinterval())
        return build_message(claimed)

    if tuned:
        with tuning.tuned():
            report = deliver(session_factory, transport_for(smtp), Clock(), build=build)
    else:
        report = deliver(session_factory, transport_for(smtp), Clock(), build=build)
    assert report.sent == 3
    return seen


def test_a_library_sending_run_leaves_the_process_alone(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    before = sys.getswitchinterval()
    assert _intervals_seen_while_sending(session_factory, smtp, tuned=False) == [before] * 3


def test_a_tuned_sending_run_switches_threads_sooner(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    before = sys.getswitchinterval()
    seen = _intervals_seen_while_sending(session_factory, smtp, tuned=True)
    assert seen == [tuning.SWITCH_INTERVAL] * 3
    assert sys.getswitchinterval() == before


def test_the_cli_runs_sending_commands_tuned() -> None:
    async def probe(stop: asyncio.Event) -> tuple[float, int]:
        return sys.getswitchinterval(), gc.get_threshold()[0]

    interval, young = cli_app._run_stoppable(probe)
    assert interval == tuning.SWITCH_INTERVAL
    assert young >= tuning.YOUNG_THRESHOLD


def _child_priorities(pool: RenderPool) -> list[int]:
    assert pool.submit([]).result(timeout=60) == {}
    executor = pool._executor
    assert executor is not None
    children = list(executor._processes)  # the pids of the running children
    assert children
    return [os.getpriority(os.PRIO_PROCESS, pid) for pid in children]


def test_render_processes_yield_the_cpu_to_the_sender(db_url: str) -> None:
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert ours < 19
    tuned = RenderPool(_settings(db_url), 1, tuning.render_child_setup)
    plain = RenderPool(_settings(db_url), 1)
    try:
        assert _child_priorities(tuned) == [min(19, ours + tuning.NICENESS)]
        assert _child_priorities(plain) == [ours]  # a library pool changes nothing
    finally:
        tuned.shutdown()
        plain.shutdown()
