"""Bounces and complaints that arrive later by mail, read from a real Maildir and applied."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from mailer.config import Settings
from mailer.context import Context, Defaults, make_context
from mailer.db.digests import PlannedDigest, insert_digest
from mailer.db.outbox import ClaimedDigest, Outcome, record
from mailer.db.session import SessionFactory
from mailer.db.tables import BounceReportRow, DigestRow, SubscriberRow, SuppressionRow
from mailer.delivery.inbound import MaildirInbox
from mailer.models import DigestStatus
from mailer.schedule import Period
from mailer.subscribers import manage as subscriptions
from mailer.subscribers.bounce_mailbox import BounceOptions, BounceRun, read_bounces
from mailer.subscribers.manage import SubscriberInput
from tests.helpers.bounces import deliver, maildir, report, states

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RCPT = "alice@example.net"
HARD = [
    "postfix_user_unknown.eml",
    "exim_text_no_such_user.eml",
    "qmail_no_mailbox.eml",
    "gmail_address_not_found.eml",
    "exchange_online_recipient_not_found.eml",
]


@pytest.fixture
def ctx(session_factory: SessionFactory) -> Context:
    settings = Settings(
        secret_key="bounce-test-secret-0123456789abcdef",
        MAILER_FROM="Paper Digest <digest@example.org>",
        bounce_address="bounces@example.org",
    )
    return make_context(settings, session_factory, clock=lambda: NOW)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "bounces"
    maildir(path)
    yield path


def _subscriber(sf: SessionFactory, email: str = RCPT) -> int:
    raw = SubscriberInput(email, "diffusion", send_time="08:00", timezone="UTC")
    joined = NOW - timedelta(days=30)
    return subscriptions.add(sf, raw, confirmed=True, defaults=Defaults(), now=joined).id


def _sent(sf: SessionFactory, subscriber_id: int, day: int = 1) -> tuple[int, str]:
    """A digest that went out on day ``day`` of December: its id and Message-ID."""
    message_id = f"<digest-{subscriber_id}-{day}@example.org>"
    sent_at = datetime(2026, 12, day, 8, 0, tzinfo=UTC)
    plan = PlannedDigest(
        subscriber_id=subscriber_id, period=Period.parse(f"2026-12-{day:02d}"),
        status=DigestStatus.PENDING, note=None, message_id=message_id, matches=(),
        matched_count=1, considered_count=9, window_start=None, window_end=sent_at,
    )  # fmt: skip
    with sf.begin() as session:
        digest_id = insert_digest(session, plan, sent_at)
        assert digest_id is not None
        session.execute(
            update(DigestRow)
            .where(DigestRow.id == digest_id)
            .values(status=DigestStatus.SENT.value, sent_at=sent_at, attempts=1, last_code=250)
        )
    return digest_id, message_id


def _report_for(ctx: Context, name: str, digest_id: int, message_id: str, **kw: str) -> bytes:
    assert ctx.return_path is not None
    return report(
        name, return_path=ctx.return_path.for_digest(digest_id), message_id=message_id, **kw
    )


def _read(ctx: Context, path: Path, limit: int = 1, batch: int = 100) -> BounceRun:
    return read_bounces(ctx, MaildirInbox(path, 2 * 1024 * 1024), BounceOptions(limit, 200, batch))


def _subscriber_row(sf: SessionFactory, subscriber_id: int) -> SubscriberRow:
    with sf() as session:
        row = session.get(SubscriberRow, subscriber_id)
        assert row is not None
        session.expunge(row)
        return row


def _digest_row(sf: SessionFactory, digest_id: int) -> DigestRow:
    with sf() as session:
        row = session.get(DigestRow, digest_id)
        assert row is not None
        session.expunge(row)
        return row


def _suppressions(sf: SessionFactory) -> list[tuple[str | None, str]]:
    with sf() as session:
        rows = session.execute(select(SuppressionRow.email, SuppressionRow.reason)).all()
        return [(email, reason) for email, reason in rows]


def _reports(sf: SessionFactory) -> list[tuple[str, int | None, bool]]:
    with sf() as session:
        query = select(BounceReportRow.kind, BounceReportRow.digest_id, BounceReportRow.counted)
        return [(k, d, c) for k, d, c in session.execute(query.order_by(BounceReportRow.id))]


@pytest.mark.parametrize("name", HARD)
def test_a_signed_hard_bounce_bounces_the_subscriber_and_suppresses_the_address(
    ctx: Context, session_factory: SessionFactory, box: Path, name: str
) -> None:
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    key = deliver(maildir(box), _report_for(ctx, name, digest_id, message_id, rcpt=RCPT))
    run = _read(ctx, box)
    assert run.as_dict()["hard"] == 1 and run.as_dict()["now_bounced"] == 1
    row = _subscriber_row(session_factory, sid)
    assert (row.status, row.hard_bounces, row.next_due_at) == ("bounced", 1, None)
    assert row.last_bounce_reply is not None and row.last_bounce_reply.startswith("5.1.1")
    digest = _digest_row(session_factory, digest_id)
    assert digest.status == "bounced" and digest.last_reply
    assert digest.last_reply.startswith("bounced later: 5.1.")
    assert _suppressions(session_factory) == [(RCPT, "hard_bounce")]
    assert _reports(session_factory) == [("hard", digest_id, True)]
    assert states(box) == {"new": [], "cur": [f"{key}:2,S"]}
    # A second run reads nothing and changes nothing.
    assert _read(ctx, box).read == 0
    assert _subscriber_row(session_factory, sid).hard_bounces == 1


def test_bounce_limit_counts_hard_bounces_across_digests(
    ctx: Context, session_factory: SessionFactory, box: Path
) -> None:
    sid = _subscriber(session_factory)
    first, first_id = _sent(session_factory, sid, day=1)
    second, second_id = _sent(session_factory, sid, day=2)
    inbox = maildir(box)
    deliver(inbox, _report_for(ctx, "postfix_user_unknown.eml", first, first_id, rcpt=RCPT))
    _read(ctx, box, limit=2)
    row = _subscriber_row(session_factory, sid)
    assert (row.status, row.hard_bounces) == ("active", 1)
    assert _suppressions(session_factory) == []
    # The same digest bouncing again (another copy of the report) does not count twice.
    deliver(inbox, _report_for(ctx, "qmail_no_mailbox.eml", first, first_id, rcpt=RCPT))
    assert _read(ctx, box, limit=2).as_dict()["duplicate"] == 1
    assert _subscriber_row(session_factory, sid).hard_bounces == 1
    deliver(inbox, _report_for(ctx, "gmail_address_not_found.eml", second, second_id, rcpt=RCPT))
    _read(ctx, box, limit=2)
    row = _subscriber_row(session_factory, sid)
    assert (row.status, row.hard_bounces) == ("bounced", 2)


def test_soft_bounces_count_until_a_later_delivery(
    ctx: Context, session_factory: SessionFactory, engine: Engine, box: Path
) -> None:
    sid = _subscriber(session_factory)
    first, first_id = _sent(session_factory, sid, day=1)
    inbox = maildir(box)
    deliver(inbox, _report_for(ctx, "exim_mailbox_full.eml", first, first_id, rcpt=RCPT))
    deliver(inbox, _report_for(ctx, "postfix_delayed.eml", first, first_id, rcpt=RCPT))
    run = _read(ctx, box)
    assert (run.as_dict()["soft"], run.as_dict()["duplicate"]) == (1, 1)  # one per digest
    row = _subscriber_row(session_factory, sid)
    assert (row.status, row.soft_bounces, row.hard_bounces) == ("active", 1, 0)
    # The next digest is delivered: the recorder starts the count over.
    second, _ = _sent(session_factory, sid, day=2)
    with session_factory.begin() as session:
        session.execute(update(DigestRow).where(DigestRow.id == second).values(status="sending"))
    claimed = ClaimedDigest(second, sid, RCPT, "2026-12-02", "<x@y>", 1, NOW, soft_bounces=1)
    with engine.connect() as connection:
        assert record(
            connection, [Outcome(digest=claimed, status=DigestStatus.SENT, code=250)], NOW, 1
        ) == [True]
    assert _subscriber_row(session_factory, sid).soft_bounces == 0


def test_a_soft_bounce_reported_after_a_later_delivery_is_kept_but_not_counted(
    ctx: Context, session_factory: SessionFactory, box: Path
) -> None:
    sid = _subscriber(session_factory)
    first, first_id = _sent(session_factory, sid, day=1)
    _sent(session_factory, sid, day=2)  # accepted since: the trouble is over
    deliver(maildir(box), _report_for(ctx, "postfix_delayed.eml", first, first_id, rcpt=RCPT))
    assert _read(ctx, box).as_dict()["soft"] == 1
    assert _subscriber_row(session_factory, sid).soft_bounces == 0
    assert _reports(session_factory) == [("soft", first, False)]


@pytest.mark.parametrize("name", ["yahoo_arf_abuse.eml", "arf_rfc5965_abuse.eml"])
def test_a_complaint_unsubscribes_and_suppresses_at_once_and_is_not_a_bounce(
    ctx: Context, session_factory: SessionFactory, box: Path, name: str
) -> None:
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    deliver(maildir(box), _report_for(ctx, name, digest_id, message_id, rcpt=RCPT))
    run = _read(ctx, box)
    assert (run.as_dict()["complaint"], run.as_dict()["now_unsubscribed"]) == (1, 1)
    row = _subscriber_row(session_factory, sid)
    assert (row.status, row.hard_bounces, row.soft_bounces) == ("unsubscribed", 0, 0)
    assert row.unsubscribed_at is not None and row.next_due_at is None
    assert _digest_row(session_factory, digest_id).status == "sent"  # it was delivered
    assert _suppressions(session_factory) == [(RCPT, "complaint")]
    assert _reports(session_factory) == [("complaint", digest_id, False)]


@pytest.mark.parametrize(
    "name",
    [
        "vacation_rfc3834.eml",
        "outlook_automatic_reply.eml",
        "human_reply.eml",
        "postfix_delivered_notice.eml",
        "arf_dmarc_auth_failure.eml",
        "gmail_dmarc_policy.eml",
    ],
)
def test_auto_replies_unknown_mail_and_policy_rejections_change_no_one(
    ctx: Context, session_factory: SessionFactory, box: Path, name: str
) -> None:
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    key = deliver(maildir(box), _report_for(ctx, name, digest_id, message_id, rcpt=RCPT))
    run = _read(ctx, box)
    assert run.read == 1 and run.unreadable == 0
    row = _subscriber_row(session_factory, sid)
    assert (row.status, row.hard_bounces, row.soft_bounces) == ("active", 0, 0)
    assert _digest_row(session_factory, digest_id).status == "sent"
    assert _suppressions(session_factory) == []
    assert states(box) == {"new": [], "cur": [f"{key}:2,S"]}  # dealt with, not read again


def test_a_forged_report_for_a_real_subscriber_changes_nothing(
    ctx: Context, session_factory: SessionFactory, box: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The right Message-ID and address, but no signed envelope sender: not proof."""
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    inbox = maildir(box)
    for return_path in ("digest@example.org", "bounces+1-00000000000000000000@example.org"):
        deliver(
            inbox,
            report(
                "postfix_user_unknown.eml",
                return_path=return_path,
                message_id=message_id,
                rcpt=RCPT,
            ),
        )
    deliver(inbox, report("yahoo_arf_abuse.eml", message_id=message_id))
    with caplog.at_level(logging.WARNING, logger="mailer.subscribers.bounce_mailbox"):
        run = _read(ctx, box)
    assert run.as_dict()["unproven"] == 3
    row = _subscriber_row(session_factory, sid)
    assert (row.status, row.hard_bounces) == ("active", 0)
    assert _digest_row(session_factory, digest_id).status == "sent"
    assert _suppressions(session_factory) == [] and _reports(session_factory) == []
    assert f"claims the Message-ID of digest {digest_id}" in caplog.text
    assert RCPT not in caplog.text  # addresses are not logged


def test_a_report_for_an_unknown_message_or_an_erased_subscriber_changes_nothing(
    ctx: Context, session_factory: SessionFactory, box: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    other = _subscriber(session_factory, "bob@example.net")
    inbox = maildir(box)
    deliver(inbox, report("postfix_user_unknown.eml", message_id="<never@sent.example>"))
    deliver(inbox, _report_for(ctx, "qmail_no_mailbox.eml", digest_id, message_id, rcpt=RCPT))
    subscriptions.remove(session_factory, sid, NOW)
    with caplog.at_level(logging.WARNING):
        run = _read(ctx, box)
    assert (run.as_dict()["unproven"], run.as_dict()["unmatched"]) == (1, 1)
    assert "claims nothing we sent" in caplog.text
    assert _subscriber_row(session_factory, other).status == "active"


def test_without_a_bounce_address_nothing_can_be_proven(
    session_factory: SessionFactory, box: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plain = make_context(
        Settings(secret_key="s" * 32, MAILER_FROM="Paper Digest <digest@example.org>"),
        session_factory,
    )
    sid = _subscriber(session_factory)
    _, message_id = _sent(session_factory, sid)
    deliver(maildir(box), report("postfix_user_unknown.eml", message_id=message_id, rcpt=RCPT))
    with caplog.at_level(logging.WARNING):
        assert _read(plain, box).as_dict()["unproven"] == 1
    assert "no MAILER_BOUNCE_ADDRESS is set" in caplog.text
    assert _subscriber_row(session_factory, sid).status == "active"


def test_a_50_mb_report_is_read_only_up_to_the_cap_and_still_applied(
    ctx: Context, session_factory: SessionFactory, box: Path
) -> None:
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    dsn = _report_for(ctx, "exim_mailbox_full.eml", digest_id, message_id, rcpt=RCPT)
    # The returned message grows to 50 MB: a server that sends back a huge attachment.
    huge = dsn.replace(b"3 new papers match", b"3 new papers match" + b"A" * (50 * 2**20))
    path = box / "new" / "1795939382.huge.relay"
    path.write_bytes(huge)
    inbox = MaildirInbox(box, 2 * 1024 * 1024)
    incoming = next(inbox.messages(10))
    assert (len(incoming.data), incoming.truncated) == (2 * 1024 * 1024, True)
    run = read_bounces(ctx, inbox, BounceOptions())
    assert (run.truncated, run.as_dict()["soft"]) == (1, 1)
    assert _subscriber_row(session_factory, sid).soft_bounces == 1


def test_a_mime_bomb_is_kept_flagged_and_counted_once(
    ctx: Context, session_factory: SessionFactory, box: Path
) -> None:
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    signed = _report_for(ctx, "postfix_user_unknown.eml", digest_id, message_id, rcpt=RCPT)
    bomb = signed.replace(
        b"This is a MIME-encapsulated message.",
        b"--x\nContent-Type: multipart/mixed; boundary=x\n\n" * 5000,
    )
    key = deliver(maildir(box), bomb)
    run = _read(ctx, box)
    assert (run.read, run.unreadable) == (1, 1)
    assert states(box) == {"new": [], "cur": [f"{key}:2,FS"]}  # kept for a person
    assert _subscriber_row(session_factory, sid).status == "active"
    assert _read(ctx, box).read == 0


def test_the_same_message_applied_twice_counts_once(
    ctx: Context, session_factory: SessionFactory, box: Path
) -> None:
    """A crash after the commit and before the message was marked: it is read again."""
    sid = _subscriber(session_factory)
    digest_id, message_id = _sent(session_factory, sid)
    data = _report_for(ctx, "postfix_user_unknown.eml", digest_id, message_id, rcpt=RCPT)
    inbox = maildir(box)
    deliver(inbox, data)
    deliver(inbox, data)
    run = _read(ctx, box, limit=5)
    assert (run.as_dict()["hard"], run.as_dict()["duplicate"]) == (1, 1)
    assert _subscriber_row(session_factory, sid).hard_bounces == 1


def test_a_maildir_that_is_not_one_is_a_configuration_error(tmp_path: Path) -> None:
    from mailer.errors import ConfigError

    with pytest.raises(ConfigError, match="is not a Maildir"):
        MaildirInbox(tmp_path, 1024)


def test_bounces_and_complaints_per_day_against_digests_sent(
    ctx: Context, session_factory: SessionFactory, box: Path
) -> None:
    from mailer.db.bounces import bounce_days

    inbox = maildir(box)
    for number, name in enumerate(
        ["postfix_user_unknown.eml", "exim_mailbox_full.eml", "arf_rfc5965_abuse.eml", None]
    ):
        sid = _subscriber(session_factory, f"user{number}@example.net")
        digest_id, message_id = _sent(session_factory, sid, day=1)
        if name is not None:
            deliver(inbox, _report_for(ctx, name, digest_id, message_id, rcpt="x@example.net"))
    _read(ctx, box, batch=10)  # the reports arrive on 1 December (the context's clock)
    with session_factory() as session:
        (day,) = bounce_days(session, NOW.date())
    assert (day.day, day.sent, day.hard, day.soft, day.complaints) == (NOW.date(), 4, 1, 1, 1)
    assert (day.bounce_rate, day.complaint_rate) == (0.5, 0.25)
