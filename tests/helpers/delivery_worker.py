"""A delivery worker process for crash and multi-worker tests, plus outbox seeding helpers.

Run: ``python -m tests.helpers.delivery_worker DB_URL SMTP_PORT [--concurrency N] ...``;
it sends every due digest (burst mode) and exits 0, also on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import insert

from mailer.db.session import SessionFactory, make_engine, make_session_factory
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.delivery import (
    ClaimedDigest,
    DeliveryReport,
    RetryPolicy,
    SmtpConfig,
    SmtpTransport,
    deliver_due,
    stop_on_signals,
)

FROM = "Paper Digest <digest@example.org>"
T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def build_message(digest: ClaimedDigest) -> EmailMessage:
    """A small digest email naming its row, enough to check who got what."""
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = digest.email
    message["Subject"] = f"Your paper digest for {digest.period}"
    message["X-Digest-Id"] = str(digest.digest_id)
    message.set_content(f"Digest {digest.digest_id} for {digest.email}, {digest.period}.\n")
    return message


def seed(
    session_factory: SessionFactory,
    count: int,
    *,
    period: str = "2026-11-22",
    created_at: datetime = T0,
    status: str = "active",
    domain: str = "example.net",
) -> list[str]:
    """Insert ``count`` subscribers, each with one pending digest; returns their addresses."""
    emails = [f"user{i:05d}@{domain}" for i in range(count)]
    with session_factory.begin() as session:
        ids = session.scalars(
            insert(SubscriberRow).returning(SubscriberRow.id, sort_by_parameter_order=True),
            [_subscriber(email, status, created_at) for email in emails],
        ).all()
        session.execute(
            insert(DigestRow),
            [_digest(sid, period, created_at) for sid in ids],
        )
    return emails


def _subscriber(email: str, status: str, at: datetime) -> dict[str, object]:
    return {
        "email": email,
        "status": status,
        "profile": "*",
        "frequency": "daily",
        "send_time": "08:00",
        "timezone": "UTC",
        "weekday": 0,
        "next_due_at": at + timedelta(days=1),
        "created_at": at,
        "confirmed_at": at,
        "hard_bounces": 0,
        "soft_bounces": 0,
    }


def _digest(subscriber_id: int, period: str, at: datetime) -> dict[str, object]:
    return {
        "subscriber_id": subscriber_id,
        "period": period,
        "status": "pending",
        "message_id": f"<digest-{subscriber_id}-{period}@example.org>",
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }


async def run(args: argparse.Namespace) -> DeliveryReport:
    """Deliver until nothing is due (or a signal asks us to stop)."""
    engine = make_engine(args.db_url)
    sessions = make_session_factory(engine)
    config = SmtpConfig(
        "127.0.0.1", args.smtp_port, security="none", concurrency=args.concurrency, timeout=10
    )
    policy = RetryPolicy(base_seconds=args.retry_base, lease_seconds=args.lease)
    stop = asyncio.Event()
    try:
        with stop_on_signals(stop):
            async with SmtpTransport(config) as transport:
                return await deliver_due(
                    sessions, transport, build_message, policy, batch_size=args.batch, stop=stop
                )
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the report on one line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("db_url")
    parser.add_argument("smtp_port", type=int)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--retry-base", type=float, default=0.05)
    parser.add_argument("--lease", type=float, default=300.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    report = asyncio.run(run(args))
    print(f"sent={report.sent} retried={report.retried} released={report.released}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
