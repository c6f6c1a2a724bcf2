"""Subscriber life cycle functions shared by the CLI and the web app: update, pause, erase."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from mailer.context import Defaults
from mailer.db.digests import PlannedDigest, insert_digest
from mailer.db.session import SessionFactory
from mailer.db.subscribers import email_hash
from mailer.db.tables import DigestRow, SubscriberRow, SuppressionRow
from mailer.errors import InputError, InvalidEmail, NotFound, ProfileError
from mailer.models import DigestNote, DigestStatus, Period, SubscriberStatus
from mailer.subscribers import manage as subscriptions
from mailer.subscribers.manage import Changes, SubscriberInput

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday, 10:00 UTC


def _add(sf: SessionFactory, email: str = "alice@example.org", **kw: object) -> int:
    raw = SubscriberInput(email=email, profile="diffusion", send_time="08:00", timezone="UTC")
    return subscriptions.add(
        sf, raw, confirmed=bool(kw.get("confirmed", True)), defaults=Defaults(), now=NOW
    ).id


def _row(sf: SessionFactory, email: str = "alice@example.org") -> SubscriberRow:
    with sf() as session:
        row = session.scalars(select(SubscriberRow).where(SubscriberRow.email == email)).one()
        session.expunge(row)
        return row


def _plan_digest(sf: SessionFactory, subscriber_id: int, period: str, at: datetime) -> None:
    plan = PlannedDigest(
        subscriber_id=subscriber_id, period=Period.parse(period), status=DigestStatus.SKIPPED,
        note=DigestNote.NO_PAPERS, message_id=f"<{period}@x>", matches=(), matched_count=0,
        considered_count=0, window_start=None, window_end=at,
    )  # fmt: skip
    with sf.begin() as session:
        insert_digest(session, plan, at)


def test_update_validates_every_field_like_signup(session_factory: SessionFactory) -> None:
    _add(session_factory)
    bad = [
        Changes(profile='"unbalanced'),
        Changes(frequency="hourly"),
        Changes(send_time="25:00"),
        Changes(timezone="Mars/Olympus"),
        Changes(weekday="funday"),
        Changes(profile="   "),
    ]
    for change in bad:
        with pytest.raises(InputError):
            subscriptions.update(session_factory, "alice@example.org", change, NOW)
    row = _row(session_factory)
    assert (row.profile, row.frequency, row.send_time, row.timezone) == (
        "diffusion", "daily", "08:00", "UTC",
    )  # fmt: skip


def test_update_changes_fields_and_recomputes_next_due(session_factory: SessionFactory) -> None:
    _add(session_factory)
    changed = subscriptions.update(
        session_factory,
        "ALICE@example.org",
        Changes(profile="world model", send_time="20:30", timezone="Asia/Tokyo"),
        NOW,
    )
    assert (changed.profile, changed.send_time, changed.timezone) == (
        "world model", "20:30", "Asia/Tokyo",
    )  # fmt: skip
    # 20:30 Tokyo on 18 Nov is 11:30 UTC, still ahead of NOW.
    assert _row(session_factory).next_due_at == datetime(2026, 11, 18, 11, 30, tzinfo=UTC)


def test_switching_to_weekly_after_this_weeks_digest_waits_for_next_week(
    session_factory: SessionFactory,
) -> None:
    sid = _add(session_factory)
    _plan_digest(session_factory, sid, "2026-11-18", datetime(2026, 11, 18, 8, 0, tzinfo=UTC))
    subscriptions.update(session_factory, sid, Changes(frequency="weekly", weekday="monday"), NOW)
    # Monday of this week has passed and a digest went out after it: next Monday.
    assert _row(session_factory).next_due_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_profile_only_change_keeps_the_schedule(session_factory: SessionFactory) -> None:
    _add(session_factory)
    before = _row(session_factory).next_due_at
    subscriptions.update(session_factory, "alice@example.org", Changes(profile="robots"), NOW)
    assert _row(session_factory).next_due_at == before


def test_pause_and_resume(session_factory: SessionFactory) -> None:
    _add(session_factory)
    paused = subscriptions.pause(session_factory, "alice@example.org", NOW)
    assert paused.status is SubscriberStatus.PAUSED
    assert _row(session_factory).next_due_at is None
    resumed = subscriptions.resume(session_factory, "alice@example.org", NOW)
    assert resumed.status is SubscriberStatus.ACTIVE
    # Today's 08:00 UTC has passed and no digest was planned: due at once.
    assert _row(session_factory).next_due_at == datetime(2026, 11, 18, 8, 0, tzinfo=UTC)


def test_pending_cannot_pause_and_unsubscribed_cannot_resume(
    session_factory: SessionFactory,
) -> None:
    _add(session_factory, confirmed=False)
    with pytest.raises(InputError, match="pending"):
        subscriptions.pause(session_factory, "alice@example.org", NOW)
    subscriptions.unsubscribe(session_factory, "alice@example.org", NOW)
    with pytest.raises(InputError, match="unsubscribed"):
        subscriptions.resume(session_factory, "alice@example.org", NOW)


def test_unsubscribe_is_idempotent_and_keeps_the_first_time(
    session_factory: SessionFactory,
) -> None:
    _add(session_factory)
    subscriptions.unsubscribe(session_factory, "alice@example.org", NOW)
    later = NOW.replace(hour=12)
    gone = subscriptions.unsubscribe(session_factory, "alice@example.org", later)
    row = _row(session_factory)
    assert gone.status is SubscriberStatus.UNSUBSCRIBED
    assert (row.status, row.unsubscribed_at, row.next_due_at) == ("unsubscribed", NOW, None)


def test_remove_erases_row_and_digests_and_leaves_only_a_hash(
    session_factory: SessionFactory,
) -> None:
    sid = _add(session_factory)
    _plan_digest(session_factory, sid, "2026-11-18", NOW)
    assert subscriptions.remove(session_factory, "alice@example.org", NOW) == "alice@example.org"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(SubscriberRow)) == 0
        assert session.scalar(select(func.count()).select_from(DigestRow)) == 0
        (tomb,) = session.scalars(select(SuppressionRow)).all()
    assert tomb.email_hash == email_hash("alice@example.org") != "alice@example.org"
    assert tomb.reason == "erased"
    with pytest.raises(NotFound):
        subscriptions.get(session_factory, "alice@example.org")


def test_add_refuses_erased_or_unsubscribed_without_reconsent(
    session_factory: SessionFactory,
) -> None:
    _add(session_factory, "alice@example.org")
    _add(session_factory, "bob@example.org")
    subscriptions.remove(session_factory, "alice@example.org", NOW)
    subscriptions.unsubscribe(session_factory, "bob@example.org", NOW)
    with pytest.raises(InputError, match="erased"):
        _add(session_factory, "Alice@Example.org")
    with pytest.raises(InputError, match="unsubscribed"):
        _add(session_factory, "bob@example.org")
    raw = SubscriberInput(email="alice@example.org", profile="robots")
    back = subscriptions.add(
        session_factory, raw, confirmed=True, defaults=Defaults(), now=NOW, reconsented=True
    )
    assert back.status is SubscriberStatus.ACTIVE
    raw = SubscriberInput(email="bob@example.org", profile="robots")
    subscriptions.add(
        session_factory, raw, confirmed=False, defaults=Defaults(), now=NOW, reconsented=True
    )
    assert _row(session_factory, "bob@example.org").status == "pending"
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(SuppressionRow)) == 0


def test_add_refuses_a_live_duplicate_even_with_reconsent(session_factory: SessionFactory) -> None:
    _add(session_factory)
    raw = SubscriberInput(email="alice@example.org", profile="robots")
    with pytest.raises(InputError, match="already a subscriber"):
        subscriptions.add(
            session_factory, raw, confirmed=True, defaults=Defaults(), now=NOW, reconsented=True
        )


def test_unknown_subscriber_and_bad_address(session_factory: SessionFactory) -> None:
    with pytest.raises(NotFound, match=r"nobody@example\.org"):
        subscriptions.pause(session_factory, "nobody@example.org", NOW)
    with pytest.raises(NotFound, match="id 42"):
        subscriptions.unsubscribe(session_factory, 42, NOW)
    with pytest.raises(InvalidEmail):
        subscriptions.remove(session_factory, "not an address", NOW)
    with pytest.raises(ProfileError):
        _add(session_factory)  # valid
        subscriptions.update(session_factory, "alice@example.org", Changes(profile="-x"), NOW)
