"""Crash safety and many workers: real worker processes, a real SMTP server, a real database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow

try:  # tests/ may or may not be a package; the helpers import either way
    from helpers.delivery_worker import seed
    from helpers.smtp_server import SmtpServer
except ModuleNotFoundError:
    from tests.helpers.delivery_worker import seed
    from tests.helpers.smtp_server import SmtpServer

ROOT = Path(__file__).resolve().parent.parent
COUNT = 2000
CONCURRENCY = 4
LEASE = 3.0
NOW = datetime.now(UTC) - timedelta(minutes=1)  # the workers run on the real clock


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def start_worker(db_url: str, server: SmtpServer, *extra: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.helpers.delivery_worker", db_url, str(server.port)]
    args += ["--concurrency", str(CONCURRENCY), "--lease", str(LEASE), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(worker: subprocess.Popen[str], timeout: float = 90) -> str:
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err
    return out


def wait_for_count(server: SmtpServer, worker: subprocess.Popen[str], count: int) -> None:
    deadline = time.monotonic() + 60
    while server.count < count:
        assert worker.poll() is None, worker.communicate()
        assert time.monotonic() < deadline, "the worker sent too little"
        time.sleep(0.005)


def statuses(sessions: SessionFactory) -> dict[str, int]:
    with sessions() as session:
        rows = session.execute(select(DigestRow.status, func.count()).group_by(DigestRow.status))
        return {row[0]: row[1] for row in rows}


def test_sigkill_mid_run_then_restart_delivers_everyone_with_few_duplicates(
    db_url: str, session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, COUNT, created_at=NOW)
    worker = start_worker(db_url, smtp)
    wait_for_count(smtp, worker, COUNT // 4)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=10)
    assert smtp.count < COUNT, "killed too late to prove anything"
    assert statuses(session_factory).get("sending", 0) > 0  # the dead worker left rows behind

    time.sleep(LEASE + 0.2)  # their leases run out
    finish(start_worker(db_url, smtp))

    received = Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert set(received) == set(emails)  # nobody lost
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= CONCURRENCY
    for email, n in received.items():
        if n > 1:  # a resend is the same message: same Message-ID
            assert len({m.message_id for m in smtp.received_by(email)}) == 1
    assert statuses(session_factory) == {"sent": COUNT}


def test_sigterm_mid_run_exits_0_and_leaves_nothing_in_sending(
    db_url: str, session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    seed(session_factory, COUNT, created_at=NOW)
    worker = start_worker(db_url, smtp)
    wait_for_count(smtp, worker, COUNT // 5)
    worker.send_signal(signal.SIGTERM)
    out = finish(worker, timeout=30)

    state = statuses(session_factory)
    assert "sending" not in state
    assert state.get("sent", 0) == smtp.count < COUNT  # every send recorded, no more claimed
    assert "released=" in out

    finish(start_worker(db_url, smtp))  # a restart picks up the rest at once
    assert statuses(session_factory) == {"sent": COUNT}
    assert smtp.count == COUNT  # a graceful stop causes no duplicate at all


def test_two_workers_on_one_database_send_each_digest_exactly_once(
    db_url: str, session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, COUNT, created_at=NOW)
    workers = [start_worker(db_url, smtp, "--batch", "20") for _ in range(2)]
    outputs = [finish(worker) for worker in workers]

    received = Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert received == Counter(emails)  # each exactly once
    sent = [int(out.split("sent=")[1].split()[0]) for out in outputs]
    assert sum(sent) == COUNT
    assert all(n > 0 for n in sent), f"one worker did everything: {sent}"
    assert statuses(session_factory) == {"sent": COUNT}


def test_mailer_send_stops_gracefully_on_sigterm_with_render_processes(
    db_url: str, session_factory: SessionFactory, smtp: SmtpServer, tmp_path: Path
) -> None:
    from sqlalchemy import update

    from tests.test_delivery_batch import _seed

    _seed(session_factory, COUNT)
    with session_factory.begin() as session:  # seeded for a fixed instant: make them due now
        session.execute(update(DigestRow).values(next_attempt_at=NOW))
    env = {
        **os.environ,
        "MAILER_DATABASE_URL": db_url,
        "MAILER_SMTP_HOST": smtp.host,
        "MAILER_SMTP_PORT": str(smtp.port),
        "MAILER_SMTP_SECURITY": "none",
        "MAILER_SECRET_KEY": "sigterm-test-secret-key-0123456789abcdef",
        "MAILER_FROM": "Paper Digest <digest@example.org>",
        "MAILER_RENDER_PROCESSES": "1",
        "MAILER_SOURCES": "file:/nonexistent",
    }
    command = [sys.executable, "-m", "mailer", "send"]
    sender = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_count(smtp, sender, COUNT // 5)
    sender.send_signal(signal.SIGTERM)
    _, err = sender.communicate(timeout=30)
    assert sender.returncode == 0, err
    assert "SIGTERM received" in err and "Traceback" not in err
    assert "started 1 render processes" in err  # the run did use a render process
    state = statuses(session_factory)
    assert "sending" not in state
    assert state.get("sent", 0) == smtp.count < COUNT

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert statuses(session_factory) == {"sent": COUNT}
    received = Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert len(received) == COUNT and set(received.values()) == {1}  # no duplicate at all
