"""The suppression list: the CLI, and every way in (signup, import, add) refusing it quietly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select, text

from mailer.context import Defaults
from mailer.db import suppressions as suppression_repo
from mailer.db.session import SessionFactory, make_engine, make_session_factory
from mailer.db.subscribers import email_hash
from mailer.db.tables import SubscriberRow, SuppressionRow
from mailer.errors import InputError
from mailer.models import SuppressionReason
from mailer.subscribers import manage as subscriptions
from mailer.subscribers import suppression
from mailer.subscribers.importer import import_csv
from mailer.subscribers.manage import SubscriberInput
from tests.browser.harness import Harness
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)
from tests.test_web_signup import rows, subscribe

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _suppress(sf: SessionFactory, email: str, reason: SuppressionReason) -> None:
    with sf.begin() as session:
        suppression_repo.suppress(session, email, reason, NOW, "550 5.1.1 no such user")


def test_cli_add_list_remove(cli: Invoke) -> None:
    assert cli("subscribers", "add", "bob@example.org", "--keywords", "x", "--confirmed").code == 0
    added = cli("suppressions", "add", "Bob@Example.org", "--note", "asked by phone")
    assert added.code == 0
    assert added.out.strip() == (
        "bob@example.org suppressed; the subscriber (active) is unsubscribed"
    )
    again = cli("suppressions", "add", "bob@example.org")
    assert again.out.strip() == "bob@example.org already suppressed"
    assert cli("suppressions", "add", "carol@example.org").code == 0
    listed = json.loads(cli("suppressions", "list", "--json").out)
    assert [(e["email"], e["reason"], e["detail"]) for e in listed] == [
        ("bob@example.org", "operator", "asked by phone"),
        ("carol@example.org", "operator", None),
    ]
    assert listed[0]["email_sha256"] == email_hash("bob@example.org")
    shown = json.loads(cli("subscribers", "show", "bob@example.org", "--json").out)
    assert shown["status"] == "unsubscribed"
    only = json.loads(cli("suppressions", "list", "--reason", "complaint", "--json").out)
    assert only == []
    assert "bob@example.org" in cli("suppressions", "list").out
    removed = cli("suppressions", "remove", "bob@example.org")
    assert removed.out.strip() == "bob@example.org removed from the suppression list (operator)"
    missing = cli("suppressions", "remove", "bob@example.org")
    assert (missing.code, missing.err.strip()) == (
        2,
        "error: bob@example.org is not on the suppression list",
    )
    bad = cli("suppressions", "list", "--reason", "spam")
    assert bad.code == 2 and "use one of hard_bounce, complaint, operator, erased" in bad.err
    assert cli("suppressions", "add", "not an address").code == 2


def test_erasure_keeps_only_the_hash_of_a_suppression(cli: Invoke) -> None:
    cli("subscribers", "add", "dora@example.org", "--keywords", "x", "--confirmed")
    cli("suppressions", "add", "dora@example.org", "--note", "dora@example.org complained")
    assert cli("subscribers", "remove", "dora@example.org", "--yes").code == 0
    (entry,) = json.loads(cli("suppressions", "list", "--json").out)
    assert (entry["email"], entry["reason"], entry["detail"]) == (None, "operator", None)
    assert entry["email_sha256"] == email_hash("dora@example.org")
    assert "(erased) sha256:" in cli("suppressions", "list").out
    assert "dora" not in cli("suppressions", "list", "--json").out


def test_add_and_import_refuse_a_suppressed_address(session_factory: SessionFactory) -> None:
    _suppress(session_factory, "eve@example.org", SuppressionReason.COMPLAINT)
    raw = SubscriberInput("eve@example.org", "x")
    for reconsented in (False, True):
        with pytest.raises(InputError, match=r"suppression list \(complaint\)"):
            subscriptions.add(
                session_factory, raw, confirmed=True, defaults=Defaults(), now=NOW,
                reconsented=reconsented,
            )  # fmt: skip
    report = import_csv(
        session_factory, b"email,keywords\neve@example.org,x\nfay@example.org,y\n",
        defaults=Defaults(), confirmed=True, now=NOW,
    )  # fmt: skip
    assert [str(e) for e in report.errors] == [
        "line 2: eve@example.org is on the suppression list (complaint); it is never mailed again"
    ]
    assert [s.email for s in report.imported] == ["fay@example.org"]


def test_an_erased_address_still_comes_back_only_with_renewed_consent(
    session_factory: SessionFactory,
) -> None:
    raw = SubscriberInput("gus@example.org", "x")
    sid = subscriptions.add(session_factory, raw, confirmed=True, defaults=Defaults(), now=NOW).id
    subscriptions.remove(session_factory, sid, NOW)
    with pytest.raises(InputError, match="was erased"):
        subscriptions.add(session_factory, raw, confirmed=True, defaults=Defaults(), now=NOW)
    back = subscriptions.add(
        session_factory, raw, confirmed=True, defaults=Defaults(), now=NOW, reconsented=True
    )
    assert back.status.value == "active"
    with session_factory() as session:
        assert suppression_repo.find(session, "gus@example.org") is None  # tombstone lifted


def test_signup_for_a_suppressed_address_answers_the_same_and_does_nothing(
    app: Harness, session_factory: SessionFactory
) -> None:
    _suppress(session_factory, "alice@example.org", SuppressionReason.HARD_BOUNCE)
    with httpx.Client(base_url=app.url(), timeout=10) as client:
        suppressed = subscribe(client)
        other = subscribe(client, email="zoe@example.org")
    assert suppressed.status_code == other.status_code == 200
    assert suppressed.text == other.text  # no account enumeration
    assert [row.email for row in rows(session_factory)] == ["zoe@example.org"]
    assert app.smtp.wait_for(1)
    assert [m.rcpt_tos for m in app.smtp.messages] == [("zoe@example.org",)]


def test_suppression_add_through_the_service_reports_what_it_stopped(
    session_factory: SessionFactory,
) -> None:
    raw = SubscriberInput("hal@example.org", "x")
    subscriptions.add(session_factory, raw, confirmed=False, defaults=Defaults(), now=NOW)
    added = suppression.add(session_factory, "hal@example.org", NOW)
    assert (added.new, added.stopped) == (True, "pending")
    with session_factory() as session:
        row = session.scalars(select(SubscriberRow)).one()
        assert row.status == "unsubscribed"


def test_migration_keeps_tombstones_and_suppresses_bounced_subscribers(db_url: str) -> None:
    from mailer.db.migrate import downgrade, upgrade

    downgrade(db_url, "0003")
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO suppression (email_hash, reason, created_at) VALUES (:h, 'erased', :t)"
            ),
            {"h": email_hash("gone@example.org"), "t": NOW},
        )
        for email, status in (("dead@example.org", "bounced"), ("live@example.org", "active")):
            conn.execute(
                text(
                    "INSERT INTO subscriber (email, status, profile, frequency, send_time,"
                    " timezone, weekday, created_at, hard_bounces, soft_bounces,"
                    " last_bounce_reply) VALUES (:e, :s, 'x', 'daily', '08:00', 'UTC', 0, :t,"
                    " 1, 0, '550 5.1.1 gone')"
                ),
                {"e": email, "s": status, "t": NOW},
            )
    upgrade(db_url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        found = {
            (row.email, row.reason, row.detail) for row in session.scalars(select(SuppressionRow))
        }
    engine.dispose()
    assert found == {
        (None, "erased", None),
        ("dead@example.org", "hard_bounce", "550 5.1.1 gone"),
    }
