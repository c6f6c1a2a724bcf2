"""The papers pages over real HTTP: a day's papers, searching the store, the JSON API."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from mailer.db.papers import upsert_papers
from mailer.db.session import SessionFactory
from mailer.models import Paper
from tests.browser.harness import Harness, running_app

# The harness seeds its three papers on Sunday 22 November 2026 (07:30 UTC).
THURSDAY = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)
FRIDAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def paper(n: int, title: str, **fields: object) -> Paper:
    arxiv_id = f"2611.{n:05d}"
    defaults: dict[str, object] = {
        "abstract": f"We study {title.lower()} in depth.",
        "authors": ("Ann Author", "Ben Writer"),
        "url": f"https://arxiv.org/abs/{arxiv_id}",
        "source": "test",
    }
    return Paper(key=arxiv_id, arxiv_id=arxiv_id, title=title, **{**defaults, **fields})  # type: ignore[arg-type]


def store(app: Harness, papers: list[Paper], at: datetime) -> None:
    with app.ctx.session_factory.begin() as session:
        upsert_papers(session, papers, at)


@pytest.fixture
def app(session_factory: SessionFactory) -> Iterator[Harness]:
    with running_app(session_factory, cache_seconds=0) as harness:
        store(
            harness,
            [
                paper(10, "Robot Grasping with Tactile Sensing", upvotes=3),
                paper(
                    11,
                    "Diffusion Models for Robot Motion",
                    upvotes=40,
                    authors=("A One", "B Two", "C Three", "D Four"),
                    pdf_url="https://arxiv.org/pdf/2611.00011",
                    hf_url="https://huggingface.co/papers/2611.00011",
                    code_url="https://github.com/example/motion",
                ),
                paper(12, "Quiet Paper Without Votes"),
            ],
            THURSDAY,
        )
        store(harness, [paper(20, "World Models Learn Physics", upvotes=7)], FRIDAY)
        yield harness


def titles(html: str) -> list[str]:
    found = re.findall(r'<h2 class="t">(.*?)</h2>', html, re.S)
    return [unescape(re.sub(r"<[^>]+>", "", t)) for t in found]


def test_latest_day_by_default_most_upvoted_first_with_links(client: httpx.Client) -> None:
    page = client.get("/papers")
    assert page.status_code == 200 and "Papers of Sunday 22 November 2026" in page.text
    assert "Get these papers in your inbox" in page.text and 'href="/?profile=%2A"' in page.text
    day = client.get("/papers", params={"date": "2026-11-19"})
    assert titles(day.text) == [
        "Diffusion Models for Robot Motion",
        "Robot Grasping with Tactile Sensing",
        "Quiet Paper Without Votes",
    ]
    html = day.text
    assert 'href="https://arxiv.org/abs/2611.00011"' in html
    assert "A One, B Two, C Three et al." in html  # shortened authors
    assert "We study diffusion models for robot motion in depth." in html  # the abstract
    for label, url in [
        ("PDF", "https://arxiv.org/pdf/2611.00011"),
        ("Hugging Face", "https://huggingface.co/papers/2611.00011"),
        ("Code", "https://github.com/example/motion"),
    ]:
        assert f'<a href="{url}">{label}</a>' in html
    assert "40 upvotes" in html and "3 upvotes" in html


def test_previous_and_next_link_the_nearest_days_with_papers(client: httpx.Client) -> None:
    friday = client.get("/papers", params={"date": "2026-11-20"}).text
    assert '<a rel="prev" href="/papers?date=2026-11-19">← Thu 19 Nov</a>' in friday
    assert '<a rel="next" href="/papers?date=2026-11-22">Sun 22 Nov →</a>' in friday
    latest = client.get("/papers").text
    assert 'rel="next"' not in latest and 'href="/papers?date=2026-11-20"' in latest


def test_a_day_without_an_announcement_says_so(client: httpx.Client) -> None:
    saturday = client.get("/papers", params={"date": "2026-11-21"})
    assert saturday.status_code == 200
    assert (
        "No announcement on Saturday 21 November 2026: Hugging Face Daily Papers publish no "
        "papers at weekends." in saturday.text
    )
    assert 'href="/papers?date=2026-11-20"' in saturday.text  # the way back to papers
    wednesday = client.get("/papers", params={"date": "2026-11-18"}).text
    assert "No papers were stored for Wednesday 18 November 2026." in wednesday
    future = client.get("/papers", params={"date": "2027-01-05"}).text
    assert "This day has not come yet." in future


def test_long_days_are_paginated(client: httpx.Client, app: Harness) -> None:
    store(app, [paper(100 + n, f"Bulk paper {n}", upvotes=n) for n in range(60)], FRIDAY)
    first = client.get("/papers", params={"date": "2026-11-20"}).text
    assert len(titles(first)) == 50 and titles(first)[0] == "Bulk paper 59"
    assert "1\u201350 shown" in first and "Page 1 of 2" in first
    second = client.get("/papers", params={"date": "2026-11-20", "page": "2"}).text
    assert len(titles(second)) == 11 and 'start="51"' in second
    assert client.get("/papers", params={"date": "2026-11-20", "page": "3"}).status_code == 404


def test_search_highlights_and_orders_newest_first_or_by_relevance(
    client: httpx.Client,
) -> None:
    page = client.get("/papers", params={"q": "robot"})
    assert page.status_code == 200
    assert titles(page.text) == [
        "Diffusion Policy for Visuomotor Control",  # Sunday: its abstract says "robot"
        "Diffusion Models for Robot Motion",  # Thursday, 40 upvotes
        "Robot Grasping with Tactile Sensing",  # Thursday, 3 upvotes
    ]
    assert "<mark>Robot</mark>" in page.text and "Matched: robot" in page.text
    assert "3 of 7 stored papers match, newest first" in page.text
    newest = client.get("/papers", params={"q": "world model, grasping"}).text
    assert titles(newest) == [
        "A Survey of World Models",  # Sunday
        "World Models Learn Physics",  # Friday
        "Robot Grasping with Tactile Sensing",  # Thursday
    ]
    relevance = client.get(
        "/papers", params={"q": "world model, grasping", "order": "relevance"}
    ).text
    assert set(titles(relevance)) == set(titles(newest)) and "Most relevant" in relevance
    # Two interests matched outrank one, whatever the day (as in the digest).
    both = client.get("/papers", params={"q": "robot, tactile", "order": "relevance"}).text
    assert titles(both)[0] == "Robot Grasping with Tactile Sensing"
    assert titles(client.get("/papers", params={"q": "robot, tactile"}).text)[0] == (
        "Diffusion Policy for Visuomotor Control"
    )


def test_search_is_paginated(client: httpx.Client, app: Harness) -> None:
    store(app, [paper(200 + n, f"Graph networks part {n}") for n in range(25)], FRIDAY)
    first = client.get("/papers", params={"q": "graph networks"}).text
    assert len(titles(first)) == 20 and "Page 1 of 2" in first
    found = re.search(r'<a rel="next" href="([^"]+)"', first)
    assert found
    second = client.get(unescape(found.group(1))).text
    assert len(titles(second)) == 5
    assert not set(titles(first)) & set(titles(second))


def test_an_invalid_search_shows_the_parser_message_and_position(client: httpx.Client) -> None:
    page = client.get("/papers", params={"q": 'robots, "world model'})
    assert page.status_code == 400
    assert "unbalanced quote" in page.text and "at character 9" in page.text
    assert '<mark class="at">&#34;</mark>' in page.text
    api = client.get("/api/papers", params={"q": 'robots, "world model'})
    assert api.status_code == 400
    assert (
        api.json()["error"]["position"] == 8
        and "unbalanced quote" in api.json()["error"]["message"]
    )


def test_subscribe_to_this_search_fills_in_the_signup_form(client: httpx.Client) -> None:
    page = client.get("/papers", params={"q": '"world model", -survey'}).text
    found = re.search(r'<a class="button" href="([^"]+)">Subscribe to this search</a>', page)
    assert found
    link = unescape(found.group(1))
    assert parse_qs(urlsplit(link).query) == {"profile": ['"world model", -survey']}
    form = client.get(link)
    assert form.status_code == 200 and 'name="csrf_token"' in form.text
    assert ">&#34;world model&#34;, -survey</textarea>" in form.text
    assert "<mark>World Models</mark> Learn Physics" in form.text  # previewed at once
    assert "A Survey of World Models" not in form.text


def test_the_signup_preview_links_to_the_full_search(client: httpx.Client) -> None:
    fragment = client.get("/preview", params={"q": "world model"}).text
    assert 'href="/papers?q=world+model"' in fragment


def test_new_and_changed_papers_reach_the_search(client: httpx.Client, app: Harness) -> None:
    assert titles(client.get("/papers", params={"q": "quantum"}).text) == []
    store(app, [paper(30, "Quantum Robots")], app.clock())
    assert titles(client.get("/papers", params={"q": "quantum"}).text) == ["Quantum Robots"]
    app.clock.advance(minutes=5)
    store(app, [paper(30, "Classical Robots")], app.clock())  # the source fixed the title
    assert titles(client.get("/papers", params={"q": "quantum"}).text) == []
    assert "Classical Robots" in titles(client.get("/papers", params={"q": "classical"}).text)


def test_day_api_has_the_documented_fields(client: httpx.Client) -> None:
    data = client.get("/api/papers", params={"date": "2026-11-19"}).json()
    assert data["date"] == "2026-11-19" and data["total"] == 3 and data["pages"] == 1
    assert (data["previous_date"], data["next_date"]) == (None, "2026-11-20")
    first = data["papers"][0]
    assert set(first) == {
        "key", "arxiv_id", "title", "abstract", "authors", "categories", "url", "pdf_url",
        "hf_url", "code_url", "project_url", "upvotes", "comments", "published", "day",
    }  # fmt: skip
    assert first["title"] == "Diffusion Models for Robot Motion" and first["upvotes"] == 40
    assert first["day"] == "2026-11-19"
    empty = client.get("/api/papers", params={"date": "2026-11-21"}).json()
    assert empty["papers"] == [] and empty["notice"].startswith("No announcement")


def test_search_api_explains_each_match(client: httpx.Client) -> None:
    data = client.get("/api/papers", params={"q": "tactile"}).json()
    assert (data["query"], data["order"], data["total"], data["error"]) == (
        "tactile",
        "newest",
        1,
        None,
    )
    match = data["papers"][0]["match"]
    assert match["interests"] == ["tactile"] and match["words"] == ["Tactile"]
    title = data["papers"][0]["title"]
    [span] = [h for h in match["highlights"] if h["field"] == "title"]
    assert title[span["start"] : span["end"]] == "Tactile"


def test_pages_are_cached_with_an_etag(client: httpx.Client) -> None:
    first = client.get("/papers", params={"date": "2026-11-19"})
    assert first.headers["cache-control"] == "public, max-age=60"
    again = client.get(
        "/papers", params={"date": "2026-11-19"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    assert "set-cookie" not in first.headers  # the same page for everyone


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"date": "yesterday"}, "is not a date"),
        ({"date": "2026-02-30"}, "does not exist"),
        ({"page": "0"}, "page must be"),
        ({"page": "9" * 40}, "page must be"),
        ({"order": "random", "q": "robot"}, "order must be"),
        ({"q": "robot " * 700}, "the limit is 2,000"),
    ],
)
def test_bad_parameters_get_a_clear_answer(
    client: httpx.Client, params: dict[str, str], message: str
) -> None:
    page = client.get("/papers", params=params)
    assert page.status_code == 400 and message in unescape(page.text)
    api = client.get("/api/papers", params=params)
    assert api.status_code == 400 and message in api.json()["error"]["message"]


def test_everything_works_without_a_store(session_factory: SessionFactory) -> None:
    with running_app(session_factory) as app, httpx.Client(base_url=app.url()) as client:
        with app.ctx.session_factory.begin() as session:
            from mailer.db.tables import PaperRow

            session.query(PaperRow).delete()
        assert client.get("/papers").status_code == 200
        assert client.get("/papers", params={"q": "robot"}).status_code == 200
        assert client.get("/api/papers").json()["papers"] == []


def test_day_boundaries_are_utc(client: httpx.Client, app: Harness) -> None:
    late = datetime(2026, 11, 19, 23, 59, 59, tzinfo=UTC)
    store(app, [paper(40, "Late Thursday Paper")], late)
    store(app, [paper(41, "Early Friday Paper")], late + timedelta(seconds=1))
    assert "Late Thursday Paper" in titles(client.get("/papers?date=2026-11-19").text)
    assert "Early Friday Paper" in titles(client.get("/papers?date=2026-11-20").text)
