"""The outbox worker against a real SMTP server, on SQLite (and PostgreSQL when configured)."""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

try:  # tests/ may or may not be a package; the helpers import either way
    from helpers.delivery_worker import T0, build_message, seed
    from helpers.smtp_server import DROP, SmtpServer
except ModuleNotFoundError:
    from tests.helpers.delivery_worker import T0, build_message, seed
    from tests.helpers.smtp_server import DROP, SmtpServer
from sqlalchemy import event, select, update

from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.delivery import (
    ClaimedDigest,
    DeliveryReport,
    MaildirTransport,
    Outgoing,
    RetryPolicy,
    SmtpConfig,
    SmtpTransport,
    Transport,
    WireMessage,
    deliver_due,
    stamp_message_id,
)
from mailer.delivery.leases import HeldRows
from mailer.delivery.worker import _Run
from mailer.mail.wire import message_bytes


class Clock:
    """A hand-driven UTC clock."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass(frozen=True)
class Row:
    status: str
    attempts: int
    last_code: int | None
    note: str | None
    last_reply: str | None
    sent_at: datetime | None
    next_attempt_at: datetime | None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(seed=7) as server:
        yield server


def transport_for(server: SmtpServer, concurrency: int = 4) -> SmtpTransport:
    return SmtpTransport(
        SmtpConfig(server.host, server.port, security="none", concurrency=concurrency, timeout=5)
    )


def deliver(
    sessions: SessionFactory,
    transport: Transport,
    clock: Clock,
    policy: RetryPolicy | None = None,
    build: Callable[[ClaimedDigest], Outgoing] = build_message,
    **kwargs: Any,
) -> DeliveryReport:
    async def go() -> DeliveryReport:
        async with transport:
            return await deliver_due(
                sessions, transport, build, policy or RetryPolicy(), now=clock, **kwargs
            )

    return asyncio.run(go())


def outbox(sessions: SessionFactory) -> dict[str, Row]:
    with sessions() as session:
        found = session.execute(
            select(
                SubscriberRow.email,
                DigestRow.status,
                DigestRow.attempts,
                DigestRow.last_code,
                DigestRow.note,
                DigestRow.last_reply,
                DigestRow.sent_at,
                DigestRow.next_attempt_at,
            ).join(SubscriberRow, SubscriberRow.id == DigestRow.subscriber_id)
        ).all()
    return {email: Row(*rest) for email, *rest in found}


def subscriber(sessions: SessionFactory, email: str) -> SubscriberRow:
    with sessions() as session:
        row = session.scalars(select(SubscriberRow).where(SubscriberRow.email == email)).one()
        session.expunge(row)
        return row


def test_each_due_digest_is_sent_once_and_recorded(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 12)
    clock = Clock()
    report = deliver(session_factory, transport_for(smtp), clock, batch_size=5)

    assert report.sent == 12 and report.attempted == 12
    assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == emails
    rows = outbox(session_factory)
    assert {row.status for row in rows.values()} == {"sent"}
    assert all(row.sent_at == clock.at and row.last_code == 250 for row in rows.values())
    assert all(row.attempts == 1 for row in rows.values())
    # The Message-ID is the outbox row's, so a resend would reuse it.
    with session_factory() as session:
        ids = set(session.scalars(select(DigestRow.message_id)))
    assert {m.message_id for m in smtp.messages} == ids

    again = deliver(session_factory, transport_for(smtp), clock)
    assert again.sent == 0 and smtp.count == 12


def test_451_at_data_for_30_percent_still_delivers_each_digest_exactly_once(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 120)
    smtp.fail("data", "451 4.3.0 try again later", fraction=0.3)
    clock = Clock()
    retried = 0
    for _ in range(30):
        report = deliver(session_factory, transport_for(smtp), clock)
        retried += report.retried
        if smtp.count == len(emails):
            break
        clock.advance(hours=1)

    received = Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert received == Counter(emails)  # everyone, once
    assert retried >= 20  # the faults did strike
    rows = outbox(session_factory)
    assert {row.status for row in rows.values()} == {"sent"}
    assert max(row.attempts for row in rows.values()) >= 2


def test_550_for_two_addresses_bounces_them_and_delivers_the_rest(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 10)
    dead = emails[2:4]
    smtp.fail("rcpt", "550 5.1.1 mailbox unavailable", addresses=dead)
    report = deliver(session_factory, transport_for(smtp), Clock())

    assert report.bounced == 2 and report.sent == 8
    assert {r for m in smtp.messages for r in m.rcpt_tos} == set(emails) - set(dead)
    rows = outbox(session_factory)
    for email in dead:
        assert rows[email].status == "bounced" and rows[email].last_code == 550
        assert "5.1.1" in (rows[email].last_reply or "")
        person = subscriber(session_factory, email)
        assert person.status == "bounced" and person.hard_bounces == 1
        assert person.next_due_at is None
    assert subscriber(session_factory, emails[0]).status == "active"


def test_failure_log_lines_name_the_digest_never_the_address(
    session_factory: SessionFactory, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    emails = seed(session_factory, 3)
    # Real servers quote the recipient in their replies; the log line must not.
    smtp.fail("rcpt", f"550 5.1.1 <{emails[0].upper()}>: no such user", addresses=emails[:1])
    smtp.fail("rcpt", f"451 4.3.0 <{emails[1]}> try later", addresses=emails[1:2])
    caplog.set_level("DEBUG", logger="mailer.delivery")
    report = deliver(session_factory, transport_for(smtp), Clock())

    assert (report.bounced, report.sent) == (1, 1)
    # Only our own lines: aiosmtpd's debug log in the test server names recipients by design.
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("mailer.")]
    assert any("bounced" in line and "<recipient>" in line for line in lines)
    assert any("will be retried" in line for line in lines)
    assert not [line for line in lines for email in emails if email.lower() in line.lower()]
    # The operator still has the whole reply where it belongs: on the outbox row.
    assert emails[0].upper() in (outbox(session_factory)[emails[0]].last_reply or "")


def test_bounce_limit_two_keeps_subscriber_after_one_bounce(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 1)
    smtp.fail("rcpt", "550 5.1.1 no such user", addresses=emails)
    deliver(session_factory, transport_for(smtp), Clock(), RetryPolicy(bounce_limit=2))
    person = subscriber(session_factory, emails[0])
    assert person.status == "active" and person.hard_bounces == 1
    assert outbox(session_factory)[emails[0]].status == "bounced"


def test_policy_rejection_fails_the_digest_but_is_no_hard_bounce(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 3)
    smtp.fail("data", "550 5.7.1 rejected by DMARC policy", addresses=emails[:1])
    report = deliver(session_factory, transport_for(smtp), Clock())

    assert report.policy_rejected == 1 and report.failed == 1 and report.sent == 2
    row = outbox(session_factory)[emails[0]]
    assert (row.status, row.note, row.last_code) == ("failed", "policy_rejection", 550)
    person = subscriber(session_factory, emails[0])
    assert person.status == "active" and person.hard_bounces == 0


def test_refused_sender_blames_us_not_the_subscribers(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 3)
    smtp.fail("mail", "553 sender address not allowed")
    report = deliver(session_factory, transport_for(smtp), Clock())

    assert report.failed == 3 and report.bounced == 0
    assert all(subscriber(session_factory, e).hard_bounces == 0 for e in emails)
    assert {row.note for row in outbox(session_factory).values()} == {"refused"}


def test_transient_failures_back_off_then_give_up_at_the_deadline(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 1)
    smtp.fail("rcpt", "452 4.2.2 mailbox full")
    policy = RetryPolicy(base_seconds=60, deadline_hours=1)
    clock = Clock()

    report = deliver(session_factory, transport_for(smtp), clock, policy)
    row = outbox(session_factory)[emails[0]]
    assert report.retried == 1 and row.status == "retry" and row.last_code == 452
    assert row.next_attempt_at is not None
    assert timedelta(seconds=30) <= row.next_attempt_at - clock.at <= timedelta(seconds=60)

    # Not due yet: nothing is attempted before next_attempt_at.
    assert deliver(session_factory, transport_for(smtp), clock, policy).attempted == 0

    for _ in range(20):
        clock.advance(minutes=10)
        deliver(session_factory, transport_for(smtp), clock, policy)
    row = outbox(session_factory)[emails[0]]
    assert (row.status, row.note) == ("failed", "gave_up")
    assert row.attempts >= 3 and smtp.count == 0
    assert subscriber(session_factory, emails[0]).soft_bounces == row.attempts


def test_a_message_that_cannot_be_built_fails_alone(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 5)

    def build(digest: ClaimedDigest) -> EmailMessage:
        if digest.email == emails[1]:
            raise KeyError("template variable 'papers'")
        return build_message(digest)

    report = deliver(session_factory, transport_for(smtp), Clock(), build=build)
    assert report.sent == 4 and report.failed == 1
    row = outbox(session_factory)[emails[1]]
    assert row.status == "failed" and row.note == "build_error"
    assert "papers" in (row.last_reply or "")


def test_prepare_sees_each_claimed_batch_before_its_messages_are_built(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 12)
    prepared: list[list[str]] = []
    built_before_prepared: list[str] = []

    def prepare(batch: Sequence[ClaimedDigest]) -> None:
        prepared.append([digest.email for digest in batch])

    def build(digest: ClaimedDigest) -> EmailMessage:
        if not any(digest.email in batch for batch in prepared):
            built_before_prepared.append(digest.email)
        return build_message(digest)

    report = deliver(
        session_factory, transport_for(smtp), Clock(), build=build, batch_size=5, prepare=prepare
    )
    assert report.sent == 12
    assert report.released == 0  # no batch was handed back and claimed (and prepared) again
    assert [len(batch) for batch in prepared] == [5, 5, 2]
    assert sorted(email for batch in prepared for email in batch) == emails
    assert built_before_prepared == []


def test_a_failing_prepare_still_sends_every_digest(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 6)

    def prepare(batch: Sequence[ClaimedDigest]) -> None:
        raise RuntimeError("database went away while loading the batch")

    report = deliver(session_factory, transport_for(smtp), Clock(), prepare=prepare)
    assert report.sent == 6
    assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == emails


def test_digests_of_subscribers_no_longer_active_are_skipped(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 3)
    with session_factory.begin() as session:
        session.execute(
            update(SubscriberRow).where(SubscriberRow.email == emails[0]).values(status="paused")
        )
    report = deliver(session_factory, transport_for(smtp), Clock())
    assert report.sent == 2 and report.skipped == 1
    row = outbox(session_factory)[emails[0]]
    assert (row.status, row.note) == ("skipped", "subscriber_paused")
    assert smtp.received_by(emails[0]) == []


def test_rows_of_a_dead_worker_are_reclaimed_after_their_lease(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 2)
    clock = Clock()
    with session_factory.begin() as session:
        # One row was claimed by a worker that died; the other's holder is still alive.
        for email, lease in ((emails[0], -1), (emails[1], +60)):
            sid = select(SubscriberRow.id).where(SubscriberRow.email == email).scalar_subquery()
            session.execute(
                update(DigestRow)
                .where(DigestRow.subscriber_id == sid)
                .values(
                    status="sending", attempts=1, lease_until=clock.at + timedelta(seconds=lease)
                )
            )
    report = deliver(session_factory, transport_for(smtp), clock)

    assert report.sent == 1
    rows = outbox(session_factory)
    assert rows[emails[0]].status == "sent" and rows[emails[0]].attempts == 2
    assert rows[emails[1]].status == "sending"
    assert smtp.received_by(emails[1]) == []


def wire_build(digest: ClaimedDigest) -> WireMessage:
    """The helper's message, serialised as the pipeline's messages are."""
    message = build_message(digest)
    stamp_message_id(message, digest.message_id)
    return WireMessage(message_bytes(message), "digest@example.org")


@contextlib.contextmanager
def outcomes_held_back(sessions: SessionFactory) -> Iterator[threading.Event]:
    """Make every attempt to record a sent digest wait until the yielded event is set."""
    engine = sessions.kw["bind"]
    release = threading.Event()

    def wait(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE digest") and "sent_at" in statement:
            release.wait(timeout=20)

    event.listen(engine, "before_cursor_execute", wait)
    try:
        yield release
    finally:
        release.set()
        event.remove(engine, "before_cursor_execute", wait)


def test_no_more_than_concurrency_messages_are_ever_out_but_unrecorded(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    # The bound behind "duplicates after a hard kill <= MAILER_SMTP_CONCURRENCY", checked
    # directly: while no outcome can be committed, the server gets no more than two messages.
    emails = seed(session_factory, 12)
    with outcomes_held_back(session_factory) as release:
        done: list[DeliveryReport] = []
        worker = threading.Thread(
            target=lambda: done.append(
                deliver(session_factory, transport_for(smtp, 2), Clock(), build=wire_build)
            )
        )
        worker.start()
        try:
            deadline = time.monotonic() + 10
            while smtp.count < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)  # time enough for many more sends, were they allowed
            assert (smtp.count, smtp.stats.mail) == (2, 2)
        finally:
            release.set()
            worker.join(timeout=20)
    assert done and done[0].sent == 12
    assert Counter(r for m in smtp.messages for r in m.rcpt_tos) == Counter(emails)
    assert {row.status for row in outbox(session_factory).values()} == {"sent"}


def test_stop_finishes_in_flight_and_releases_the_rest(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    seed(session_factory, 20)
    stop = asyncio.Event()
    built: list[int] = []

    def build(digest: ClaimedDigest) -> EmailMessage:
        built.append(digest.digest_id)
        if len(built) == 3:
            stop.set()  # as SIGTERM would, while messages are being sent
        return build_message(digest)

    report = deliver(
        session_factory, transport_for(smtp, 2), Clock(), build=build, stop=stop, batch_size=10
    )
    rows = outbox(session_factory)
    assert "sending" not in {row.status for row in rows.values()}
    assert report.sent == smtp.count == len(built) >= 3
    assert report.released == 10 - len(built)
    assert sum(row.status == "pending" for row in rows.values()) == 20 - len(built)
    assert all(row.attempts == 0 for row in rows.values() if row.status == "pending")


def test_a_dropped_connection_is_retried_over_a_new_connection(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 6)
    smtp.fail("data", DROP, times=1)
    clock = Clock()
    transport = transport_for(smtp, 1)
    report = deliver(session_factory, transport, clock)

    assert report.sent == 5 and report.retried == 1
    assert transport.connects == 2  # one reconnect, not one connection per message
    clock.advance(hours=1)
    assert deliver(session_factory, transport_for(smtp, 1), clock).sent == 1
    assert Counter(r for m in smtp.messages for r in m.rcpt_tos) == Counter(emails)


def test_maildir_transport_delivers_readable_mail(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    emails = seed(session_factory, 3)
    box_path = tmp_path / "outbox"
    report = deliver(session_factory, MaildirTransport(box_path), Clock())

    assert report.sent == 3
    box = mailbox.Maildir(box_path, create=False)
    delivered = sorted(str(message["Delivered-To"]) for message in box)
    assert delivered == emails
    assert {row.status for row in outbox(session_factory).values()} == {"sent"}


def _aware(value: datetime) -> datetime:
    """SQLite hands timestamps back without their zone; they are stored in UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _lease_of(sessions: SessionFactory, digest_id: int) -> tuple[str, int, datetime | None]:
    with sessions() as session:
        row = session.get(DigestRow, digest_id)
        assert row is not None
        return row.status, row.attempts, row.lease_until


def test_a_batch_slower_than_its_lease_renews_it_and_sends_each_row_once(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    seed(session_factory, 12)
    clock = Clock()
    leases_at_send: list[bool] = []

    def slow_build(digest: ClaimedDigest) -> EmailMessage:
        clock.advance(seconds=60)  # each message takes a minute: 12 of them outlast the lease
        status, _, lease_until = _lease_of(session_factory, digest.digest_id)
        assert lease_until is not None and status == "sending"
        leases_at_send.append(_aware(lease_until) > clock.at)
        return build_message(digest)

    policy = RetryPolicy(lease_seconds=300)
    report = deliver(session_factory, transport_for(smtp, 1), clock, policy, build=slow_build)

    assert report.sent == smtp.count == 12
    assert leases_at_send == [True] * 12  # no row was ever sent on a lapsed lease
    assert {row.status for row in outbox(session_factory).values()} == {"sent"}


def test_a_row_taken_over_by_another_worker_is_not_sent_again(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    emails = seed(session_factory, 6)
    clock = Clock()
    built: list[int] = []

    def build(digest: ClaimedDigest) -> EmailMessage:
        built.append(digest.digest_id)
        clock.advance(seconds=100)
        if len(built) == 2:
            # Meanwhile another worker reclaims the last row (as if our lease had lapsed).
            with session_factory.begin() as session:
                session.execute(
                    update(DigestRow)
                    .where(DigestRow.id == max(ids))
                    .values(
                        attempts=DigestRow.attempts + 1, lease_until=clock.at + timedelta(hours=1)
                    )
                )
        return build_message(digest)

    with session_factory() as session:
        ids = list(session.scalars(select(DigestRow.id)))
    report = deliver(
        session_factory, transport_for(smtp, 1), clock, RetryPolicy(lease_seconds=300), build=build
    )

    assert max(ids) not in built  # dropped at the renewal, never built nor sent
    assert report.sent == smtp.count == 5
    assert report.lost_lease == 1
    taken = outbox(session_factory)[emails[-1]]
    assert taken.status == "sending" and taken.attempts == 2  # still the other worker's


def test_a_batch_whose_lease_cannot_be_renewed_hands_back_the_rest(
    session_factory: SessionFactory, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mailer.delivery.worker as worker

    def database_gone(*args: Any) -> set[int]:  # fault injection: the renewal UPDATE fails
        raise RuntimeError("database went away")

    monkeypatch.setattr(worker, "renew", database_gone)
    seed(session_factory, 10)
    clock = Clock()
    leases_at_send: list[bool] = []

    def build(digest: ClaimedDigest) -> EmailMessage:
        clock.advance(seconds=60)
        _, _, lease_until = _lease_of(session_factory, digest.digest_id)
        leases_at_send.append(lease_until is not None and _aware(lease_until) > clock.at)
        return build_message(digest)

    report = deliver(
        session_factory, transport_for(smtp, 1), clock, RetryPolicy(lease_seconds=300), build=build
    )
    # Sends stop once under a quarter of the lease is left; the rest go back to the queue
    # and are claimed again under a fresh lease.
    assert report.released > 0
    assert leases_at_send == [True] * 10
    assert report.sent == smtp.count == 10
    assert {row.status for row in outbox(session_factory).values()} == {"sent"}


def test_batches_claimed_ahead_are_renewed_too_and_never_sent_on_a_lapsed_lease(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    seed(session_factory, 40)
    clock = Clock()
    taken: set[int] = set()
    sent_after_takeover: list[int] = []

    def slow_build(digest: ClaimedDigest) -> EmailMessage:
        clock.advance(seconds=50)
        # A second worker takes any row whose lease has lapsed, as its claim would.
        with session_factory.begin() as session:
            lapsed = session.scalars(
                update(DigestRow)
                .where(DigestRow.status == "sending", DigestRow.lease_until < clock.at)
                .values(attempts=DigestRow.attempts + 1, lease_until=clock.at + timedelta(hours=1))
                .returning(DigestRow.id)
            )
            taken.update(lapsed)
        if digest.digest_id in taken:
            sent_after_takeover.append(digest.digest_id)
        return build_message(digest)

    report = deliver(
        session_factory,
        transport_for(smtp, 1),
        clock,
        RetryPolicy(lease_seconds=300),
        build=slow_build,
        batch_size=10,  # four batches, each claimed while the one before is half sent
    )
    assert taken == set() and sent_after_takeover == []  # no lease ever lapsed
    assert report.sent == smtp.count == 40


def test_a_renewal_that_finds_every_remaining_row_taken_over_ends_the_batch(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    seed(session_factory, 6)
    clock = Clock()
    built: list[int] = []
    with session_factory() as session:
        ids = sorted(session.scalars(select(DigestRow.id)))

    def build(digest: ClaimedDigest) -> EmailMessage:
        built.append(digest.digest_id)
        clock.advance(seconds=100)
        if len(built) == 2:  # another worker takes every row not started yet
            with session_factory.begin() as session:
                session.execute(
                    update(DigestRow)
                    .where(DigestRow.id.in_(ids[2:]))
                    .values(
                        attempts=DigestRow.attempts + 1, lease_until=clock.at + timedelta(hours=1)
                    )
                )
        return build_message(digest)

    report = deliver(
        session_factory, transport_for(smtp, 1), clock, RetryPolicy(lease_seconds=300), build=build
    )
    assert report.sent == smtp.count == 2
    assert report.lost_lease == 4
    assert built == ids[:2]


def test_a_cancelled_run_hands_back_what_it_claimed(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    seed(session_factory, 10)
    claimed = asyncio.Event()

    def prepare(batch: Sequence[ClaimedDigest]) -> None:
        time.sleep(0.3)  # the claim is committed; cancel the run while it is being prepared

    async def go() -> set[str]:
        async with transport_for(smtp, 2) as transport:
            run = asyncio.create_task(
                deliver_due(
                    session_factory, transport, build_message, RetryPolicy(), now=Clock(),
                    prepare=prepare,
                )
            )  # fmt: skip
            await asyncio.sleep(0.1)
            claimed.set()
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
            others = {t.get_coro().__qualname__ for t in asyncio.all_tasks()}  # type: ignore[union-attr]
            return others - {asyncio.current_task().get_coro().__qualname__}  # type: ignore[union-attr]

    leftover_tasks = asyncio.run(go())
    assert claimed.is_set()
    assert not any("_Run" in name for name in leftover_tasks)  # recorder and renewer stopped
    rows = outbox(session_factory)
    assert {row.status for row in rows.values()} == {"pending"}
    assert all(row.attempts == 0 for row in rows.values())


def test_a_claimed_batch_is_held_by_the_time_its_claim_is_seen_done(
    session_factory: SessionFactory, smtp: SmtpServer
) -> None:
    # The dispatch loop takes a batch claimed ahead as soon as its claim task is done, without
    # yielding, and treats a row it holds no lease on as taken over: it hands the batch back.
    # So the rows must be held by then. Looking once every loop iteration (as a dispatch loop
    # woken in the same iteration would) sees the earliest moment the task reads as done.
    seed(session_factory, 3)

    async def go() -> tuple[set[int], set[int]]:
        async with transport_for(smtp) as transport:
            run = _Run(
                session_factory, transport, build_message, RetryPolicy(), Clock(),
                random.random, 1, None,
            )  # fmt: skip
            run._claim_next(5)
            claiming = run.next_claim
            assert claiming is not None
            while not claiming.done():
                await asyncio.sleep(0)
            held = set(run.leases.rows)
            claimed = {digest.digest_id for digest in claiming.result().digests}
            await run.finish()  # hands the batch back
            return claimed, held

    claimed, held = asyncio.run(go())
    assert len(claimed) == 3
    assert held == claimed
    assert {row.status for row in outbox(session_factory).values()} == {"pending"}


def test_renewal_falls_due_at_half_of_the_earliest_lease_still_held() -> None:
    lease = timedelta(minutes=10)
    held = HeldRows(lease)

    def row(digest_id: int) -> ClaimedDigest:
        return ClaimedDigest(digest_id, digest_id, f"u{digest_id}@example.net", "p", "<m@x>", 1, T0)

    held.hold([row(1)], T0 + lease)
    held.hold([row(2)], T0 + 2 * lease)
    assert not held.renew_due(T0 + lease / 2 - timedelta(seconds=1))
    assert held.renew_due(T0 + lease / 2)
    held.drop(1)  # the earliest is gone: the next one counts
    assert not held.renew_due(T0 + lease / 2)
    assert not held.renew_due(T0 + lease * 1.5 - timedelta(seconds=1))
    assert held.renew_due(T0 + lease * 1.5)
    held.hold([row(3)], T0 + lease)  # an earlier lease held later counts at once
    assert held.renew_due(T0 + lease / 2)
    held.renewed([row(2), row(3)], {2, 3}, T0 + 3 * lease)
    assert not held.renew_due(T0 + lease * 2.5 - timedelta(seconds=1))
    assert held.renew_due(T0 + lease * 2.5)
    held.drop(2)
    held.drop(3)
    assert not held.renew_due(T0 + 10 * lease)  # nothing held, nothing to renew


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["hold", "drop", "renewed", "ask"]),
            st.integers(0, 5),
            st.integers(0, 40),
        ),
        max_size=40,
    )
)
def test_renewal_falls_due_exactly_when_a_scan_of_every_held_row_says_so(
    steps: list[tuple[str, int, int]],
) -> None:
    lease = timedelta(minutes=10)
    held = HeldRows(lease)
    for action, digest_id, minutes in steps:
        at = T0 + timedelta(minutes=minutes)
        row = ClaimedDigest(digest_id, digest_id, "u@example.net", "p", "<m@x>", 1, T0)
        if action == "hold":
            held.hold([row], at + lease)
        elif action == "drop":
            held.drop(digest_id)
        elif action == "renewed":
            asked = [digest for digest, _ in held.rows.values()]
            kept = {d.digest_id for d in asked if d.digest_id != digest_id}
            held.renewed(asked, kept, at + lease)
        earliest = min((until for _, until in held.rows.values()), default=None)
        expected = earliest is not None and at >= earliest - lease / 2
        assert held.renew_due(at) is expected
