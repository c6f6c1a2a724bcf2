"""Malformed and hostile input: always a 4xx with a message, never a 500, and nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.subscribers.manage import SubscriberInput, add
from mailer.tokens import Purpose
from tests.browser.harness import Harness
from tests.test_web_signup import FORM, csrf_token

MEGABYTE = "x" * 1_000_000


@pytest.fixture
def client(app: Harness) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url(), timeout=20) as http:
        yield http


def count(session_factory: SessionFactory) -> int:
    with session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(SubscriberRow)) or 0)


def post(client: httpx.Client, **changes: str) -> httpx.Response:
    return client.post("/subscribe", data={**FORM, "csrf_token": csrf_token(client), **changes})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-address", "not a valid email address"),
        ("email", "a@example.org\r\nBcc: victim@example.org", "line break"),
        ("email", "a@example.org\nSubject: hi", "line break"),
        ("email", "", "email address is empty"),
        ("email", "a" * 5000 + "@example.org", "longer than 254"),
        ("email", "<script>alert(1)</script>@example.org", "not a valid email address"),
        ("profile", '"unbalanced', "invalid profile"),
        ("profile", "-survey", "only has exclusions"),
        ("profile", "x " * 1500, "limit is 2,000"),
        ("frequency", "hourly", "daily or weekly"),
        ("send_time", "25:00", "HH:MM"),
        ("send_time", "8am\r\nX: y", "HH:MM"),
        ("timezone", "Mars/Olympus_Mons", "unknown time zone"),
        ("timezone", "../../etc/passwd", "unknown time zone"),
        ("weekday", "funday", "unknown weekday"),
    ],
)
def test_invalid_fields_get_400_with_the_reason_and_store_nothing(
    client: httpx.Client,
    app: Harness,
    session_factory: SessionFactory,
    field: str,
    value: str,
    message: str,
) -> None:
    response = post(client, **{field: value})
    assert response.status_code == 400
    assert message in response.text
    assert 'role="alert"' in response.text and f'href="#{field}"' in response.text
    assert "<script>alert" not in response.text  # echoed input is escaped
    assert count(session_factory) == 0 and app.smtp.count == 0


def test_unicode_input_is_accepted_and_stored_intact(
    client: httpx.Client, session_factory: SessionFactory
) -> None:
    response = post(client, email="zoe@exämple.org", profile="réseaux de neurones, 拡散モデル")
    assert response.status_code == 200
    with session_factory() as session:
        row = session.scalars(select(SubscriberRow)).one()
    # An international domain is stored in IDNA, so its To: header is plain ASCII.
    assert (
        row.profile == "réseaux de neurones, 拡散モデル" and row.email == "zoe@xn--exmple-cua.org"
    )


def test_a_unicode_mailbox_is_refused_without_smtputf8(
    client: httpx.Client, session_factory: SessionFactory
) -> None:
    """Issue 21.7: zoë@ was stored although no confirmation could ever be built for it."""
    response = post(client, email="zoë@example.org")
    assert response.status_code == 400 and "not plain ASCII" in response.text
    assert count(session_factory) == 0


def test_script_tags_in_the_profile_are_stored_as_text_and_escaped_in_pages(
    client: httpx.Client, app: Harness
) -> None:
    preview = client.get("/preview", params={"q": "<script>alert(1)</script>"})
    assert preview.status_code == 200 and "<script>alert(1)" not in preview.text
    shown = post(client, action="preview", profile='<img src=x onerror=alert(1)> "x')
    assert "<img src=x" not in shown.text and "&lt;img src=x" in shown.text


def test_one_megabyte_field_is_refused_with_413(
    client: httpx.Client, session_factory: SessionFactory
) -> None:
    response = post(client, profile=MEGABYTE)
    assert response.status_code == 413 and "too large" in response.text
    assert count(session_factory) == 0


def test_streamed_body_without_length_is_limited_too(
    client: httpx.Client, session_factory: SessionFactory
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"profile=" + b"y" * 10_000

    response = client.post(
        "/subscribe",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert count(session_factory) == 0


@pytest.mark.parametrize("token", [None, "", "forged.token.value"])
def test_missing_or_forged_csrf_is_refused(
    client: httpx.Client, app: Harness, session_factory: SessionFactory, token: str | None
) -> None:
    client.get("/")  # has a real cookie
    data = dict(FORM)
    if token is not None:
        data["csrf_token"] = token
    response = client.post("/subscribe", data=data)
    assert response.status_code == 403 and "Form expired" in response.text
    assert count(session_factory) == 0 and app.smtp.count == 0


def test_csrf_needs_the_cookie_not_only_the_field(
    app: Harness, session_factory: SessionFactory
) -> None:
    with httpx.Client(base_url=app.url()) as first:
        token = csrf_token(first)
    with httpx.Client(base_url=app.url()) as stranger:  # a cross-site post: no cookie
        response = stranger.post("/subscribe", data={**FORM, "csrf_token": token})
    assert response.status_code == 403 and count(session_factory) == 0


def test_a_planted_unsigned_cookie_does_not_pass(
    app: Harness, session_factory: SessionFactory
) -> None:
    with httpx.Client(base_url=app.url(), cookies={"mailer_csrf": "chosen"}) as client:
        response = client.post("/subscribe", data={**FORM, "csrf_token": "chosen"})
    assert response.status_code == 403 and count(session_factory) == 0


def test_file_uploads_and_garbage_bodies_are_4xx(
    client: httpx.Client, session_factory: SessionFactory
) -> None:
    token = csrf_token(client)
    upload = client.post(
        "/subscribe", data={"csrf_token": token}, files={"profile": ("a.txt", b"diffusion")}
    )
    assert upload.status_code == 400 and "not accepted" in upload.text
    garbage = client.post(
        "/subscribe",
        content=b"\xff\xfe\x00%%%==&&",
        headers={"Content-Type": "multipart/form-data; boundary=nope"},
    )
    assert 400 <= garbage.status_code < 500
    assert count(session_factory) == 0


def _subscriber(app: Harness) -> int:
    sub = add(
        app.ctx.session_factory,
        SubscriberInput("bob@example.org", "robots"),
        confirmed=True,
        defaults=app.ctx.defaults,
        now=app.clock(),
    )
    return sub.id


def _status(app: Harness) -> str:
    with app.ctx.session_factory() as session:
        return session.scalars(select(SubscriberRow.status)).one()


@pytest.mark.parametrize("route", ["confirm", "preferences", "unsubscribe", "digest"])
def test_tampered_and_other_purpose_tokens_are_refused(
    client: httpx.Client, app: Harness, route: str
) -> None:
    subscriber_id = _subscriber(app)
    good = app.ctx.tokens.make(Purpose(route), subscriber_id)
    other = Purpose.DIGEST if route != "digest" else Purpose.UNSUBSCRIBE
    for token in (
        app.ctx.tokens.make(other, subscriber_id),
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "x" * 5000,
        "%00%0d%0a",
        "<script>",
    ):
        response = client.get(f"/{route}/{token}")
        assert 400 <= response.status_code < 500, (route, token)
        assert "not valid" in response.text or "does not work" in response.text
        assert client.post(f"/{route}/{token}").status_code in (400, 405)
    assert _status(app) == "active"


def test_get_unsubscribe_never_unsubscribes_and_one_click_post_needs_no_cookie(
    app: Harness,
) -> None:
    token = app.ctx.tokens.make(Purpose.UNSUBSCRIBE, _subscriber(app))
    with httpx.Client(base_url=app.url()) as scanner:
        for _ in range(3):
            assert scanner.get(f"/unsubscribe/{token}").status_code == 200
            assert scanner.head(f"/unsubscribe/{token}").status_code in (200, 405)
    assert _status(app) == "active"
    with httpx.Client(base_url=app.url()) as mail_client:  # RFC 8058: no cookies, no CSRF
        response = mail_client.post(
            f"/unsubscribe/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200 and not mail_client.cookies
    assert _status(app) == "unsubscribed"


def test_unknown_routes_and_methods_are_pages_not_tracebacks(client: httpx.Client) -> None:
    missing = client.get("/nope")
    assert missing.status_code == 404 and "Page not found" in missing.text
    wrong = client.delete("/subscribe")
    assert wrong.status_code == 405
    assert "Traceback" not in missing.text + wrong.text
