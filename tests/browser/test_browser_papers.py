"""The papers pages in headless Chromium: browse a day, search, subscribe to the search, confirm,
read the personal feed; screenshots at 375 and 1280 px, light and dark, under tests/artifacts/.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest

from mailer.db.papers import upsert_papers
from mailer.delivery import RetryPolicy
from mailer.models import Paper
from mailer.pipeline.plan import plan
from mailer.pipeline.send import send_queued
from tests.browser.harness import Harness, link_path, smtp_transport
from tests.browser.test_browser_flow import app, browser, shot, status

__all__ = ["app", "browser"]

FRIDAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def paper(n: int, title: str, abstract: str, upvotes: int | None = None) -> Paper:
    arxiv_id = f"2611.{n:05d}"
    return Paper(
        key=arxiv_id,
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra"),
        categories=("cs.LG",),
        url=f"https://arxiv.org/abs/{arxiv_id}",
        pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
        hf_url=f"https://huggingface.co/papers/{arxiv_id}",
        code_url="https://github.com/example/code",
        upvotes=upvotes,
        source="test",
    )


def store(app: Harness, papers: list[Paper], at: datetime) -> None:
    with app.ctx.session_factory.begin() as session:
        upsert_papers(session, papers, at)


@pytest.fixture
def papers_app(app: Harness) -> Harness:
    """The harness's Sunday papers plus a Friday with a world-model paper."""
    store(
        app,
        [
            paper(20, "World Models Learn Intuitive Physics", "A world model predicts the next "
                  "frame; we train world models on video and test intuitive physics.", 31),
            paper(21, "Sparse Attention at Scale", "We make attention sparse and fast.", 4),
        ],
        FRIDAY,
    )  # fmt: skip
    return app


def send_digest(app: Harness) -> None:
    assert plan(app.ctx, at=app.clock(), force=True).queued == 1

    async def send() -> int:
        async with smtp_transport(app.smtp) as transport:
            return (await send_queued(app.ctx, transport, RetryPolicy())).sent

    # Playwright's sync API runs an event loop in this thread: send from another one.
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: asyncio.run(send())).result() == 1


def test_browse_search_subscribe_confirm_and_open_the_feed(
    browser: Any, papers_app: Harness
) -> None:
    app = papers_app
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(app.url("/papers"))
    page.get_by_role("heading", name="Papers of Sunday 22 November 2026").wait_for()
    page.get_by_role("link", name="← Fri 20 Nov").click()
    page.get_by_role("heading", name="Papers of Friday 20 November 2026").wait_for()
    titles = page.locator(".paper .t").all_inner_texts()
    assert titles == ["World Models Learn Intuitive Physics", "Sparse Attention at Scale"]
    assert "31 upvotes" in page.inner_text("main")
    assert "Ada Lovelace, Grace Hopper, Alan Turing et al." in page.inner_text("main")

    page.get_by_label("Search all stored papers").fill('"world model"')
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Search papers").wait_for()
    assert page.locator(".paper mark").first.inner_text() in ("World Models", "world model")
    found = page.locator(".paper .t").all_inner_texts()
    assert found == ["A Survey of World Models", "World Models Learn Intuitive Physics"]

    page.get_by_role("link", name="Subscribe to this search").click()
    page.get_by_role("heading", name="New papers for you, by email").wait_for()
    assert page.get_by_label("Your interests").input_value() == '"world model"'
    assert "World Models" in page.locator("#preview").inner_text()  # previewed at once
    page.get_by_label("Email address").fill("erin@example.org")
    page.get_by_role("button", name="Subscribe", exact=True).click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    assert app.smtp.wait_for(1)
    page.goto(app.url(link_path(app.smtp.messages[0].message, "confirm")))
    page.get_by_role("heading", name="You are subscribed").wait_for()
    assert status(app).status == "active" and status(app).profile == '"world model"'

    # A new world-model paper arrives after the confirmation; the digest goes out.
    app.clock.advance(hours=1)
    store(
        app, [paper(30, "Dreaming World Models", "Agents plan inside a world model.")], app.clock()
    )
    app.clock.advance(hours=1)
    send_digest(app)
    assert app.smtp.wait_for(3)  # confirmation, welcome, digest
    digest = app.smtp.messages[-1].message
    feed_path = link_path(digest, "feed")
    answer = page.goto(app.url(feed_path))
    assert answer is not None and answer.status == 200
    assert answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    feed = feedparser.parse(answer.body())
    assert not feed.bozo and [e.title for e in feed.entries] == ["Dreaming World Models"]
    assert "<b>world model</b>" in feed.entries[0].summary.lower()
    shot(page, "feed-1280")

    page.goto(app.url(link_path(digest, "preferences")))
    page.get_by_role("link", name="Your personal Atom feed").wait_for()
    view = page.get_by_role("link", name="View in browser").get_attribute("href") or ""
    page.goto(app.url(urlsplit(view).path))  # links carry the public MAILER_BASE_URL
    page.get_by_text("Dreaming World Models").first.wait_for()
    context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 1280])
def test_papers_pages_fit_and_read_well(
    browser: Any, papers_app: Harness, width: int, scheme: str
) -> None:
    context = browser.new_context(
        viewport={"width": width, "height": 900}, color_scheme=scheme, is_mobile=width < 500
    )
    page = context.new_page()
    for name, path in [
        ("papers", "/papers?date=2026-11-20"),
        ("search", "/papers?q=world+model%2C+attention&order=relevance"),
        ("search-error", "/papers?q=robots%2C+%22world+model"),
        ("no-announcement", "/papers?date=2026-11-21"),
        ("signup-search", "/?profile=%22world+model%22"),
    ]:
        page.goto(app_url := papers_app.url(path))
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{app_url} scrolls sideways at {width}px ({scroll}px)"
        shot(page, f"{name}-{width}-{scheme}")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(13, 17, 23)") == (scheme == "dark")
    context.close()


def test_search_and_day_links_work_without_javascript(browser: Any, papers_app: Harness) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    page.goto(papers_app.url("/papers"))
    page.get_by_label("Search all stored papers").fill("attention")
    page.get_by_label("Order").select_option("relevance")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("heading", name="Search papers").wait_for()
    assert page.locator(".paper .t").all_inner_texts() == ["Sparse Attention at Scale"]
    assert "order=relevance" in page.url
    page.get_by_role("link", name="Subscribe to this search").click()
    assert page.get_by_label("Your interests").input_value() == "attention"
    page.goto(papers_app.url("/papers?date=2026-11-21"))
    assert "No announcement on Saturday 21 November 2026" in page.inner_text("main")
    page.get_by_role("link", name="← Fri 20 Nov").click()
    page.get_by_role("heading", name="Papers of Friday 20 November 2026").wait_for()
    context.close()


def test_day_pages_page_through_long_days(browser: Any, papers_app: Harness) -> None:
    later = FRIDAY + timedelta(minutes=5)
    store(papers_app, [paper(100 + n, f"Bulk paper {n}", "Filler.", n) for n in range(55)], later)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(papers_app.url("/papers?date=2026-11-20"))
    assert page.locator(".paper").count() == 50
    page.get_by_role("link", name="Next →").click()
    page.get_by_text("Page 2 of 2").wait_for()
    assert page.locator(".paper").count() == 7
    context.close()
