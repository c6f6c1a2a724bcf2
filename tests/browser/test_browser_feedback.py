"""A reader votes from a rendered digest in headless Chromium: "less like this", then undo.

The digest's links point at the app's public URL (http://mailer.test); the browser routes
that host to the running test server, so the click is a real click on the email's link.
Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mailer.db.migrate import upgrade
from mailer.db.session import make_engine, make_session_factory
from mailer.db.tables import DigestRow, FeedbackRow
from mailer.pipeline.plan import plan
from mailer.subscribers.manage import SubscriberInput, add
from mailer.tokens import Purpose
from tests.browser.harness import Harness, running_app
from tests.browser.test_browser_flow import shot

PUBLIC = "http://mailer.test"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Harness]:
    url = f"sqlite:///{tmp_path}/web.db"
    upgrade(url)
    engine = make_engine(url)
    with running_app(make_session_factory(engine)) as harness:
        yield harness
    engine.dispose()


def digest_page(app: Harness) -> str:
    """A planned digest for a reader of "diffusion policy, world model", as viewed online."""
    add(
        app.ctx.session_factory,
        SubscriberInput("erin@example.org", "diffusion policy, world model"),
        confirmed=True,
        defaults=app.ctx.defaults,
        now=app.clock() - timedelta(hours=6),
    )
    assert plan(app.ctx, at=app.clock(), force=True).queued == 1
    with app.ctx.session_factory() as session:
        digest_id = session.scalars(select(DigestRow.id)).one()
    return f"{PUBLIC}/digest/{app.ctx.tokens.make(Purpose.DIGEST, digest_id)}"


def votes(app: Harness) -> list[int]:
    with app.ctx.session_factory() as session:
        return list(session.scalars(select(FeedbackRow.vote)))


def routed(browser: Any, app: Harness, width: int, *, script: bool = True) -> Any:
    """A browser context where the public host is served by the test server (same origin)."""
    context = browser.new_context(
        viewport={"width": width, "height": 900}, java_script_enabled=script
    )
    server = app.url("/").rstrip("/")

    def serve(route: Any) -> None:
        answer = route.fetch(url=route.request.url.replace(PUBLIC, server), max_redirects=0)
        route.fulfill(response=answer)

    context.route(f"{PUBLIC}/**", serve)
    return context


@pytest.mark.parametrize("width", [375, 1280])
def test_less_like_this_from_the_digest_then_undo(browser: Any, app: Harness, width: int) -> None:
    context = routed(browser, app, width)
    page = context.new_page()
    page.goto(digest_page(app))
    less = page.get_by_role("link", name="less like this").first
    assert "/feedback/" in (less.get_attribute("href") or "")
    shot(page, f"digest-votes-{width}")
    less.click()
    page.get_by_text("Recorded:").wait_for()  # the page's script posted the vote
    assert "less like this" in page.inner_text("#feedback")
    assert votes(app) == [-1]
    width_used = page.evaluate("document.documentElement.scrollWidth")
    assert width_used <= width, f"the page scrolls sideways ({width_used}px)"
    shot(page, f"feedback-recorded-{width}")
    page.get_by_role("button", name="Undo").click()
    page.get_by_text("no longer counts either way").wait_for()
    assert votes(app) == []
    shot(page, f"feedback-undone-{width}")
    context.close()


def test_without_script_the_button_records_the_vote(browser: Any, app: Harness) -> None:
    context = routed(browser, app, 375, script=False)
    page = context.new_page()
    page.goto(digest_page(app))
    page.get_by_role("link", name="more like this").first.click()
    page.get_by_role("button", name="Record: more like this").wait_for()
    assert votes(app) == []  # opening the link alone records nothing
    shot(page, "feedback-noscript-375")
    page.get_by_role("button", name="Record: more like this").click()
    page.get_by_text("Recorded:").wait_for()
    assert votes(app) == [1]
    context.close()
