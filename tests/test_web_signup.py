"""The signup flow over real HTTP: form, preview, subscribe, confirmation mail, confirm, welcome."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.delivery import RetryPolicy
from mailer.pipeline.plan import plan
from mailer.pipeline.send import send_queued
from mailer.web.deps import Limits
from tests.browser.harness import SECRET, Harness, link_path, running_app, smtp_transport

FORM = {
    "email": "Alice@Example.org",
    "profile": 'diffusion policy\n"world model"',
    "frequency": "daily",
    "weekday": "0",
    "send_time": "08:00",
    "timezone": "Europe/Berlin",
}


def csrf_token(client: httpx.Client) -> str:
    """Load the form (which sets the cookie) and read the token from its hidden field."""
    page = client.get("/")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


def subscribe(client: httpx.Client, **changes: str) -> httpx.Response:
    data = {**FORM, "csrf_token": csrf_token(client), "action": "subscribe", **changes}
    return client.post("/subscribe", data=data)


def rows(session_factory: SessionFactory) -> list[SubscriberRow]:
    with session_factory() as session:
        return list(session.scalars(select(SubscriberRow).order_by(SubscriberRow.id)))


def test_form_has_labelled_fields_csrf_cookie_honeypot_and_security_headers(
    client: httpx.Client,
) -> None:
    page = client.get("/")
    assert page.status_code == 200
    for field in ("email", "profile", "weekday", "send_time", "timezone"):
        assert f'<label for="{field}"' in page.text and f'id="{field}"' in page.text
    assert 'name="frequency" value="weekly"' in page.text
    assert "<option selected>UTC</option>" in page.text  # the operator default, without JS
    assert "Europe/Berlin" in page.text and 'name="website"' in page.text
    cookie = page.headers["set-cookie"]
    assert "mailer_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def test_preview_fragment_highlights_matched_words(client: httpx.Client) -> None:
    response = client.get("/preview", params={"q": "diffusion policy"})
    assert response.status_code == 200
    assert "<mark>Diffusion</mark> <mark>Policy</mark>" in response.text
    assert "Scaling Language Model Agents" not in response.text
    assert "<strong>1</strong> of the 3 papers" in response.text


def test_preview_shows_the_parser_error_with_its_position(client: httpx.Client) -> None:
    response = client.get("/preview", params={"q": 'robots, "world model'})
    assert response.status_code == 200
    assert "invalid profile" in response.text and "at character 9" in response.text
    assert 'class="at"' in response.text  # the offending character is marked


def test_preview_button_works_without_javascript(
    client: httpx.Client, app: Harness, session_factory: SessionFactory
) -> None:
    response = subscribe(client, action="preview", profile="language model agents")
    assert response.status_code == 200
    assert "<mark>Language</mark> <mark>Model</mark> <mark>Agents</mark>" in response.text
    assert 'value="Alice@Example.org"' in response.text  # the form keeps what was typed
    assert rows(session_factory) == [] and app.smtp.count == 0


def test_subscribe_sends_a_confirmation_without_user_text_and_confirm_activates(
    client: httpx.Client, app: Harness, session_factory: SessionFactory
) -> None:
    response = subscribe(client)
    assert response.status_code == 200 and "Check your inbox" in response.text
    [row] = rows(session_factory)
    assert (row.email, row.status, row.timezone) == (
        "alice@example.org",
        "pending",
        "Europe/Berlin",
    )
    assert app.smtp.wait_for(1)
    mail = app.smtp.messages[0].message
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["To"] == "alice@example.org"
    raw = app.smtp.messages[0].raw.decode()
    assert "diffusion" not in raw.lower() and "world model" not in raw.lower()
    page = client.get(link_path(mail, "confirm"))
    assert page.status_code == 200 and "You are subscribed" in page.text
    [row] = rows(session_factory)
    assert row.status == "active" and row.confirmed_at == app.clock()
    assert app.smtp.wait_for(2)  # the welcome mail, with its one-click unsubscribe
    welcome = app.smtp.messages[1].message
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    again = client.get(link_path(mail, "confirm"))
    assert again.status_code == 200 and "already confirmed" in again.text


def test_new_pending_and_active_addresses_get_the_identical_page(
    client: httpx.Client, app: Harness, session_factory: SessionFactory
) -> None:
    new = subscribe(client)
    app.clock.advance(minutes=11)
    pending = subscribe(client)
    assert app.smtp.wait_for(2)
    client.get(link_path(app.smtp.messages[1].message, "confirm"))
    app.clock.advance(minutes=11)
    active = subscribe(client, profile="something else entirely")
    assert new.status_code == pending.status_code == active.status_code == 200
    assert new.text == pending.text == active.text
    [row] = rows(session_factory)
    # A stranger cannot rewrite an active subscriber's profile through the form.
    assert row.status == "active" and "diffusion policy" in row.profile


def test_one_confirmation_per_address_per_ten_minutes(client: httpx.Client, app: Harness) -> None:
    first = subscribe(client)
    assert first.status_code == 200 and app.smtp.wait_for(1)
    again = subscribe(client, email="alice@example.org")
    # A throttled address gets exactly the answer any other address gets: no 429, no
    # Retry-After, the same page, so a stranger cannot tell that it was just submitted.
    stranger = subscribe(client, email="nobody-yet@example.org")
    assert again.status_code == stranger.status_code == 200
    assert again.text == stranger.text == first.text
    assert "retry-after" not in again.headers
    assert dict(again.headers).keys() == dict(stranger.headers).keys()
    assert app.smtp.wait_for(2) and not app.smtp.wait_for(3, timeout=0.5)
    assert len(app.smtp.received_by("alice@example.org")) == 1  # the throttled one sent nothing
    app.clock.advance(minutes=10, seconds=1)
    assert subscribe(client).status_code == 200
    assert app.smtp.wait_for(3)
    assert len(app.smtp.received_by("alice@example.org")) == 2


def test_resend_for_a_throttled_address_answers_like_any_other(
    client: httpx.Client, app: Harness
) -> None:
    subscribe(client)
    assert app.smtp.wait_for(1)
    token = csrf_token(client)
    throttled = client.post("/resend", data={"email": "alice@example.org", "csrf_token": token})
    unknown = client.post("/resend", data={"email": "bob@example.org", "csrf_token": token})
    assert throttled.status_code == unknown.status_code == 200
    assert throttled.text == unknown.text
    assert not app.smtp.wait_for(2, timeout=0.5)


def test_per_ip_throttle_answers_429(session_factory: SessionFactory) -> None:
    with (
        running_app(session_factory, limits=Limits(signups_per_ip=2)) as app,
        httpx.Client(base_url=app.url(), timeout=10) as client,
    ):
        for number in range(2):
            assert subscribe(client, email=f"u{number}@example.org").status_code == 200
        blocked = subscribe(client, email="u9@example.org")
        assert blocked.status_code == 429 and "Too many" in blocked.text
        assert [r.email for r in rows(session_factory)] == ["u0@example.org", "u1@example.org"]


def test_honeypot_gets_the_usual_page_but_nothing_happens(
    client: httpx.Client, app: Harness, session_factory: SessionFactory
) -> None:
    response = subscribe(client, website="http://spam.example")
    assert response.status_code == 200 and "Check your inbox" in response.text
    assert rows(session_factory) == [] and not app.smtp.wait_for(1, timeout=0.5)


def test_expired_confirm_link_offers_a_new_one(
    client: httpx.Client, app: Harness, session_factory: SessionFactory
) -> None:
    subscribe(client)
    assert app.smtp.wait_for(1)
    path = link_path(app.smtp.messages[0].message, "confirm")
    expired = client.get(path.replace(path.rsplit("/", 1)[1], _aged_token(app)))
    assert expired.status_code == 400 and "expired" in expired.text
    assert 'action="/resend"' in expired.text
    app.clock.advance(minutes=11)  # past the per-address interval
    data = {"email": "alice@example.org", "csrf_token": csrf_token(client)}
    assert client.post("/resend", data=data).status_code == 200
    assert app.smtp.wait_for(2)
    fresh = link_path(app.smtp.messages[1].message, "confirm")
    assert client.get(fresh).status_code == 200
    assert rows(session_factory)[0].status == "active"


def _aged_token(app: Harness) -> str:
    """A confirm token signed 49 hours ago (itsdangerous reads the real clock)."""

    class OldSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 49 * 3600

    with app.ctx.session_factory() as session:
        subscriber_id = session.scalars(select(SubscriberRow.id)).one()
    serializer = URLSafeTimedSerializer(SECRET, salt="mailer.confirm", signer=OldSigner)
    return str(serializer.dumps(subscriber_id))


def test_first_digest_window_starts_at_confirmation_outside_demo(
    client: httpx.Client, app: Harness, session_factory: SessionFactory
) -> None:
    subscribe(client, timezone="UTC", send_time="08:00")
    assert app.smtp.wait_for(1)
    client.get(link_path(app.smtp.messages[0].message, "confirm"))
    [row] = rows(session_factory)
    assert row.next_due_at is not None and row.next_due_at <= app.clock()  # due at once
    report = plan(app.ctx, at=app.clock())  # what the scheduler's due job does each minute
    # Papers stored before the confirmation are not theirs to get: nothing new yet.
    assert (report.queued, report.no_papers) == (0, 1)


def test_demo_shows_the_link_and_a_confirmed_subscriber_gets_a_digest_at_once(
    session_factory: SessionFactory,
) -> None:
    with (
        running_app(session_factory, demo=True) as app,
        httpx.Client(base_url=app.url(), timeout=10) as client,
    ):
        page = subscribe(client, timezone="UTC")
        assert "Demo mode" in page.text
        found = re.search(r'<a href="http://mailer\.test(/confirm/[^"]+)"', page.text)
        assert found
        confirmed = client.get(found.group(1))
        assert confirmed.status_code == 200 and "You are subscribed" in confirmed.text
        assert plan(app.ctx, at=app.clock()).queued == 1  # the scheduler's due job, one tick
        sent = asyncio.run(_send(app))
        assert sent == 1
        subjects = [str(m.message["Subject"]) for m in app.smtp.received_by("alice@example.org")]
        digest = [m for m in app.smtp.messages if str(m.message["Subject"]).startswith("Paper")]
        assert len(subjects) == 3  # confirmation, welcome, first digest
        assert len(digest) == 1 and "Diffusion Policy" in digest[0].raw.decode()


async def _send(app: Harness) -> int:
    async with smtp_transport(app.smtp) as transport:
        report = await send_queued(app.ctx, transport, RetryPolicy())
    return report.sent
