"""The whole subscriber journey in headless Chromium: sign up, confirm, preferences, leave.

Screenshots go to tests/artifacts/ (git-ignored). Skipped without Chromium or Playwright,
except in CI (CI=true), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailer.db.migrate import upgrade
from mailer.db.session import make_engine, make_session_factory
from mailer.db.tables import SubscriberRow
from tests.browser.harness import Harness, link_path, running_app

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _unavailable() -> str | None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Harness]:
    # One SQLite database: the browser adds nothing per backend (HTTP tests cover PostgreSQL).
    url = f"sqlite:///{tmp_path}/web.db"
    upgrade(url)
    engine = make_engine(url)
    with running_app(make_session_factory(engine)) as harness:
        yield harness
    engine.dispose()


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot under tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # something was drawn
    return path


def status(app: Harness) -> SubscriberRow:
    with app.ctx.session_factory() as session:
        return session.scalars(select(SubscriberRow)).one()


def test_sign_up_confirm_change_preferences_and_unsubscribe(browser: Any, app: Harness) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.goto(app.url("/"))
    assert page.locator("#timezone").input_value() == "Asia/Tokyo"  # pre-filled by the script
    assert page.locator("#weekday-field").is_hidden()  # daily: no weekday to choose
    page.get_by_label("Email address").fill("carol@example.org")
    page.get_by_label("Your interests").fill("diffusion policy")
    page.locator("#preview mark").first.wait_for()  # the live preview arrived
    assert "Diffusion" in page.locator("#preview").inner_text()
    page.get_by_role("radio", name="Weekly").check()
    assert page.locator("#weekday-field").is_visible()
    page.get_by_label("Day of the week").select_option("4")
    shot(page, "signup-1280")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    shot(page, "inbox-1280")
    row = status(app)
    assert (row.status, row.frequency, row.weekday, row.timezone) == (
        "pending", "weekly", 4, "Asia/Tokyo",
    )  # fmt: skip

    assert app.smtp.wait_for(1)
    page.goto(app.url(link_path(app.smtp.messages[0].message, "confirm")))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    assert "every Friday at 08:00 (Asia/Tokyo)" in page.inner_text("main")
    assert status(app).status == "active"
    shot(page, "confirmed-1280")

    assert app.smtp.wait_for(2)  # the welcome mail carries the preferences and unsubscribe links
    welcome = app.smtp.messages[1].message
    page.goto(app.url(link_path(welcome, "preferences")))
    page.get_by_label("Your interests").fill('diffusion policy\n"world model"')
    page.get_by_role("radio", name="Daily").check()
    page.get_by_label("Time", exact=True).fill("07:30")
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Your preferences are saved.").wait_for()
    row = status(app)
    assert (row.frequency, row.send_time) == ("daily", "07:30") and "world model" in row.profile
    page.get_by_role("button", name="Pause my digest").click()
    page.get_by_text("Your digest is paused.").first.wait_for()
    assert status(app).status == "paused"
    shot(page, "preferences-1280")
    page.get_by_role("button", name="Resume my digest").click()
    page.get_by_text("Your digest is back on.").wait_for()
    assert status(app).status == "active"

    page.goto(app.url(link_path(welcome, "unsubscribe")))
    assert status(app).status == "active"  # opening the page changes nothing
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="Unsubscribed").wait_for()
    assert status(app).status == "unsubscribed"
    context.close()


def test_pages_fit_a_phone_and_work_without_javascript(browser: Any, app: Harness) -> None:
    context = browser.new_context(
        viewport={"width": 375, "height": 800}, java_script_enabled=False, is_mobile=True
    )
    page = context.new_page()
    page.goto(app.url("/"))
    page.get_by_label("Email address").fill("dave@example.org")
    page.get_by_label("Your interests").fill("language model agents")
    page.get_by_role("button", name="Preview matches").click()
    page.locator("#preview mark").first.wait_for()
    assert page.locator("#timezone").input_value() == "UTC"  # no script: the default stays
    shot(page, "signup-preview-375")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert app.smtp.wait_for(1)
    page.goto(app.url(link_path(app.smtp.messages[0].message, "confirm")))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    assert app.smtp.wait_for(2)
    page.goto(app.url(link_path(app.smtp.messages[1].message, "preferences")))
    shot(page, "preferences-375")
    context.close()

    js_context = browser.new_context(viewport={"width": 375, "height": 800}, is_mobile=True)
    phone = js_context.new_page()
    phone.goto(app.url("/"))
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"the form scrolls sideways on a phone ({width}px)"
    shot(phone, "signup-375")
    js_context.close()
