"""`mailer why` explains each outcome from stored facts: digests, fetch log, subscriber state."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update

from mailer.context import Defaults
from mailer.db.digests import PlannedDigest, insert_digest
from mailer.db.fetches import FetchRecord, record_fetch
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.errors import NotFound
from mailer.models import DigestNote, DigestStatus, FetchOutcome, Period
from mailer.ops.why import explain
from mailer.subscribers import manage as subscriptions
from mailer.subscribers.manage import SubscriberInput
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)

JOINED = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)
DAY = date(2026, 11, 18)
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def _subscriber(sf: SessionFactory, *, confirmed: bool = True, tz: str = "Asia/Tokyo") -> int:
    raw = SubscriberInput("alice@example.org", "diffusion", send_time="08:00", timezone=tz)
    return subscriptions.add(sf, raw, confirmed=confirmed, defaults=Defaults(), now=JOINED).id


def _digest(sf: SessionFactory, sid: int, status: DigestStatus, note: str | None = None,
            **fields: object) -> None:  # fmt: skip
    plan = PlannedDigest(
        subscriber_id=sid, period=Period.parse(DAY.isoformat()), status=status,
        note=DigestNote(note) if note else None,
        message_id="<d1@example.org>", matches=(), matched_count=3, considered_count=40,
        window_start=None, window_end=NOW,
    )  # fmt: skip
    with sf.begin() as session:
        digest_id = insert_digest(session, plan, NOW)
        session.execute(update(DigestRow).where(DigestRow.id == digest_id).values(**fields))


def test_sent(session_factory: SessionFactory) -> None:
    sid = _subscriber(session_factory)
    sent_at = datetime(2026, 11, 17, 23, 0, 5, tzinfo=UTC)
    _digest(session_factory, sid, DigestStatus.SENT, sent_at=sent_at, paper_count=3)
    result = explain(session_factory, "alice@example.org", DAY, NOW)
    assert result.outcome == "sent"
    assert result.summary == "sent at 2026-11-18 08:00 JST"  # the subscriber's local time
    assert "Message-ID: <d1@example.org>" in result.details


@pytest.mark.parametrize(
    ("status", "outcome", "needle"),
    [
        (DigestStatus.RETRY, "retry", "451 4.3.0 try later"),
        (DigestStatus.BOUNCED, "bounced", "550 5.1.1 no such user"),
        (DigestStatus.FAILED, "failed", "gave up after 7 attempts"),
        (DigestStatus.PENDING, "queued", "queued"),
    ],
)
def test_delivery_outcomes_quote_the_smtp_reply(
    session_factory: SessionFactory, status: DigestStatus, outcome: str, needle: str
) -> None:
    sid = _subscriber(session_factory)
    reply = {"retry": "4.3.0 try later", "bounced": "5.1.1 no such user"}.get(outcome, "x")
    code = {"retry": 451, "bounced": 550}.get(outcome, 421)
    _digest(session_factory, sid, status, attempts=7, last_code=code, last_reply=reply)
    result = explain(session_factory, "alice@example.org", DAY, NOW)
    assert result.outcome == outcome
    assert needle in " ".join((result.summary, *result.details))


def test_nothing_matched_says_out_of_how_many(session_factory: SessionFactory) -> None:
    sid = _subscriber(session_factory)
    _digest(session_factory, sid, DigestStatus.SKIPPED, "no_match", matched_count=0)
    result = explain(session_factory, "alice@example.org", DAY, NOW)
    assert result.outcome == "no_match"
    assert "none of the 40 papers considered" in result.summary


def test_no_papers_shows_the_fetch_log(session_factory: SessionFactory) -> None:
    sid = _subscriber(session_factory)
    _digest(session_factory, sid, DigestStatus.SKIPPED, "no_papers", considered_count=0)
    with session_factory.begin() as session:
        record_fetch(
            session, FetchRecord("hf-daily", DAY, FetchOutcome.NO_ANNOUNCEMENT), NOW, (None, None)
        )
        record_fetch(
            session,
            FetchRecord("arxiv:cs.LG", DAY, FetchOutcome.ERROR, error="HTTP 503"),
            NOW,
            (None, None),
        )
    result = explain(session_factory, "alice@example.org", DAY, NOW)
    assert result.outcome == "no_papers"
    text = "\n".join(result.details)
    assert "hf-daily for 2026-11-18: no announcement that day" in text
    assert "arxiv:cs.LG for 2026-11-18: error (HTTP 503)" in text


def test_not_due_yet_in_local_time(session_factory: SessionFactory) -> None:
    _subscriber(session_factory, tz="America/New_York")
    early = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # 07:00 in New York
    result = explain(session_factory, "alice@example.org", DAY, early)
    assert result.outcome == "not_due"
    assert result.summary == "not due yet: that digest is due at 2026-11-18 08:00 EST"


@pytest.mark.parametrize(
    ("action", "outcome"),
    [("pause", "paused"), ("unsubscribe", "unsubscribed"), (None, "not_confirmed")],
)
def test_subscriber_states(
    session_factory: SessionFactory, action: str | None, outcome: str
) -> None:
    _subscriber(session_factory, confirmed=action is not None)
    if action is not None:
        getattr(subscriptions, action)(session_factory, "alice@example.org", NOW)
    assert explain(session_factory, "alice@example.org", DAY, NOW).outcome == outcome


def test_due_but_not_planned_points_at_the_worker(session_factory: SessionFactory) -> None:
    _subscriber(session_factory)
    with session_factory.begin() as session:
        session.execute(
            update(SubscriberRow).values(next_due_at=datetime(2026, 11, 17, 23, 0, tzinfo=UTC))
        )
    result = explain(session_factory, "alice@example.org", DAY, NOW)
    assert result.outcome == "not_planned" and "worker" in result.summary


def test_erased_and_unknown(session_factory: SessionFactory) -> None:
    _subscriber(session_factory)
    subscriptions.remove(session_factory, "alice@example.org", NOW)
    assert explain(session_factory, "alice@example.org", DAY, NOW).outcome == "erased"
    with pytest.raises(NotFound):
        explain(session_factory, "nobody@example.org", DAY, NOW)


def test_cli_why(cli: Invoke) -> None:
    assert cli("subscribers", "add", "alice@example.org", "--keywords", "x").code == 0
    text = cli("why", "alice@example.org", "--date", "2026-11-18")
    assert text.code == 0, text.err
    assert "alice@example.org on 2026-11-18: not confirmed yet" in text.out
    data = json.loads(cli("why", "alice@example.org", "--json").out)
    assert data["outcome"] == "not_confirmed" and data["facts"]["status"] == "pending"
