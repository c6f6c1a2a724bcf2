"""The web app: health, and an unsubscribe that a GET never triggers but one POST does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from mailer.config import Settings
from mailer.context import Context, make_context
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.subscribers.manage import SubscriberInput, add
from mailer.tokens import Purpose
from mailer.web.app import create_app
from tests.helpers.web_server import WebServer


@pytest.fixture
def ctx(session_factory: SessionFactory) -> Context:
    settings = Settings(secret_key="web-test-secret-0123456789abcdef")
    return make_context(settings, session_factory, clock=lambda: datetime(2026, 11, 22, tzinfo=UTC))


@pytest.fixture
def client(ctx: Context) -> Iterator[httpx.Client]:
    with WebServer(create_app(ctx)) as server, httpx.Client(base_url=server.url()) as http:
        yield http


def _status(session_factory: SessionFactory) -> str:
    with session_factory() as session:
        return session.scalars(select(SubscriberRow.status)).one()


def test_healthz_reports_the_database(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok" and body["status"] == "ok"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_unsubscribe_get_shows_a_button_and_post_unsubscribes(
    session_factory: SessionFactory, ctx: Context, client: httpx.Client
) -> None:
    sub = add(session_factory, SubscriberInput("a@example.org", "diffusion"), confirmed=True,
              defaults=ctx.defaults, now=ctx.clock())  # fmt: skip
    token = ctx.tokens.make(Purpose.UNSUBSCRIBE, sub.id)
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert _status(session_factory) == "active"
    # RFC 8058 one-click: the mail client posts this body with no cookies.
    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert _status(session_factory) == "unsubscribed"


def test_forged_or_wrong_purpose_tokens_change_nothing(
    session_factory: SessionFactory, ctx: Context, client: httpx.Client
) -> None:
    sub = add(session_factory, SubscriberInput("a@example.org", "diffusion"), confirmed=True,
              defaults=ctx.defaults, now=ctx.clock())  # fmt: skip
    wrong = ctx.tokens.make(Purpose.PREFERENCES, sub.id)
    for token in (wrong, "garbage", wrong[:-3] + "abc"):
        assert client.post(f"/unsubscribe/{token}").status_code == 400
    assert _status(session_factory) == "active"
