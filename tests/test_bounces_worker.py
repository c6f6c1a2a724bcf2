"""`mailer worker` reads the bounce mailbox on its schedule, as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import update

from mailer.config import Settings
from mailer.context import Defaults, make_context
from mailer.db.digests import PlannedDigest, insert_digest
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.models import DigestStatus
from mailer.schedule import Period
from mailer.subscribers import manage as subscriptions
from mailer.subscribers.manage import SubscriberInput
from tests.helpers.bounces import deliver, maildir, report, states

SECRET = "worker-bounce-secret-0123456789abcdef"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _wait_for(predicate: object, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_the_worker_applies_a_bounce_and_stops_on_sigterm(
    db_url: str, session_factory: SessionFactory, tmp_path: Path
) -> None:
    raw = SubscriberInput("alice@example.net", "x", send_time="08:00", timezone="UTC")
    sid = subscriptions.add(session_factory, raw, confirmed=True, defaults=Defaults(), now=NOW).id
    plan = PlannedDigest(
        subscriber_id=sid, period=Period.parse("2026-12-01"), status=DigestStatus.PENDING,
        note=None,
        message_id="<w1@example.org>", matches=(), matched_count=1, considered_count=1,
        window_start=None, window_end=NOW,
    )  # fmt: skip
    with session_factory.begin() as session:
        digest_id = insert_digest(session, plan, NOW)
        session.execute(
            update(DigestRow).where(DigestRow.id == digest_id).values(status="sent", sent_at=NOW)
        )
    settings = Settings(secret_key=SECRET, bounce_address="bounces@example.org")
    ctx = make_context(settings, session_factory)
    assert ctx.return_path is not None and digest_id is not None
    box = tmp_path / "bounces"
    key = deliver(
        maildir(box),
        report(
            "gmail_address_not_found.eml",
            return_path=ctx.return_path.for_digest(digest_id),
            message_id="<w1@example.org>",
            rcpt="alice@example.net",
        ),
    )
    papers = tmp_path / "papers.json"
    papers.write_text("[]")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(
        MAILER_DATABASE_URL=db_url,
        MAILER_SECRET_KEY=SECRET,
        MAILER_FROM="Paper Digest <digest@example.org>",
        MAILER_BOUNCE_ADDRESS="bounces@example.org",
        MAILER_BOUNCE_MAILBOX=str(box),
        MAILER_SOURCES=f"file:{papers}",
        MAILER_OUTBOX_DIR=str(tmp_path / "outbox"),
        MAILER_RENDER_PROCESSES="0",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailer", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: states(box)["cur"] == [f"{key}:2,S"])
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err.decode()
    assert b"bounce report" in err and b"now bounced" in err
    with session_factory() as session:
        row = session.get(SubscriberRow, sid)
        assert row is not None and row.status == "bounced"
