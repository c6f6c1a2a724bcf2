"""Preferences, pause/resume and the digest in the browser, through the subscriber's links."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
from sqlalchemy import select

from mailer.db.tables import DigestRow, SubscriberRow
from mailer.pipeline.plan import plan
from mailer.subscribers.manage import SubscriberInput, add
from mailer.tokens import Purpose
from tests.browser.harness import Harness

CHOICES = {
    "profile": "world model",
    "frequency": "weekly",
    "weekday": "2",
    "send_time": "18:15",
    "timezone": "America/Chicago",
}


def subscriber(app: Harness, profile: str = "diffusion policy") -> int:
    return add(
        app.ctx.session_factory,
        SubscriberInput("erin@example.org", profile),
        confirmed=True,
        defaults=app.ctx.defaults,
        now=app.clock() - timedelta(hours=6),  # before the seeded papers arrived
    ).id


def row(app: Harness) -> SubscriberRow:
    with app.ctx.session_factory() as session:
        return session.scalars(select(SubscriberRow)).one()


def prefs(app: Harness, subscriber_id: int) -> str:
    return f"/preferences/{app.ctx.tokens.make(Purpose.PREFERENCES, subscriber_id)}"


def test_preferences_page_shows_the_current_choices(client: httpx.Client, app: Harness) -> None:
    page = client.get(prefs(app, subscriber(app)))
    assert page.status_code == 200
    assert "erin@example.org" in page.text and ">diffusion policy</textarea>" in page.text
    assert "every day at 08:00 (UTC)" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_saving_changes_every_choice_and_reschedules(client: httpx.Client, app: Harness) -> None:
    path = prefs(app, subscriber(app))
    response = client.post(path, data={**CHOICES, "action": "save"})
    assert response.status_code == 200 and "Your preferences are saved." in response.text
    saved = row(app)
    assert (saved.profile, saved.frequency, saved.weekday, saved.send_time, saved.timezone) == (
        "world model", "weekly", 2, "18:15", "America/Chicago",
    )  # fmt: skip
    assert saved.next_due_at is not None and saved.next_due_at.weekday() in (2, 3)  # Wed, Chicago


def test_invalid_choices_are_refused_with_messages_and_change_nothing(
    client: httpx.Client, app: Harness
) -> None:
    path = prefs(app, subscriber(app))
    bad = {**CHOICES, "profile": '"open', "timezone": "Nowhere/Land", "send_time": "7pm"}
    response = client.post(path, data=bad)
    assert response.status_code == 400
    for text in ("invalid profile", "unknown time zone", "HH:MM"):
        assert text in response.text
    assert (row(app).profile, row(app).timezone) == ("diffusion policy", "UTC")


def test_pause_and_resume(client: httpx.Client, app: Harness) -> None:
    path = prefs(app, subscriber(app))
    paused = client.post(path, data={"action": "pause"})
    assert paused.status_code == 200 and "Resume my digest" in paused.text
    assert (row(app).status, row(app).next_due_at) == ("paused", None)
    assert plan(app.ctx, at=app.clock(), force=True).queued == 0  # paused: nothing planned
    resumed = client.post(path, data={"action": "resume"})
    assert resumed.status_code == 200 and "Pause my digest" in resumed.text
    assert row(app).status == "active" and row(app).next_due_at is not None


def test_unsubscribed_subscribers_cannot_edit_and_get_a_way_back(
    client: httpx.Client, app: Harness
) -> None:
    subscriber_id = subscriber(app)
    client.post(f"/unsubscribe/{app.ctx.tokens.make(Purpose.UNSUBSCRIBE, subscriber_id)}")
    page = client.get(prefs(app, subscriber_id))
    assert "You have unsubscribed" in page.text and "<textarea" not in page.text
    refused = client.post(prefs(app, subscriber_id), data={**CHOICES, "action": "resume"})
    assert refused.status_code == 409 and row(app).status == "unsubscribed"


def test_sent_digest_is_listed_and_viewable_in_the_browser(
    client: httpx.Client, app: Harness
) -> None:
    subscriber_id = subscriber(app, profile="diffusion policy")
    report = plan(app.ctx, at=app.clock(), force=True)
    assert report.queued == 1
    with app.ctx.session_factory.begin() as session:
        digest = session.scalars(select(DigestRow)).one()
        digest.status, digest.sent_at = "sent", app.clock()
    page = client.get(prefs(app, subscriber_id))
    assert "Past digests" in page.text and "View in browser" in page.text
    assert "/feed/" in page.text and "Atom feed" in page.text
    view_path = re.search(r'href="http://mailer\.test(/digest/[^"]+)">View in browser', page.text)
    assert view_path
    view = client.get(view_path.group(1))
    assert view.status_code == 200 and "for Visuomotor Control" in view.text
    assert "style-src 'unsafe-inline'" in view.headers["content-security-policy"]
    assert "script-src" not in view.headers["content-security-policy"]  # default-src 'none'
    missing = client.get(f"/digest/{app.ctx.tokens.make(Purpose.DIGEST, 999_999)}")
    assert missing.status_code == 404
