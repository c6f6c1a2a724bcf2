"""The personal Atom feed: from the digest's footer, valid RFC 4287, newest first, 304s."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import timedelta
from email.message import EmailMessage

import feedparser
import httpx

from mailer.delivery import RetryPolicy
from mailer.models import Paper
from mailer.pipeline.plan import plan
from mailer.pipeline.send import send_queued
from mailer.subscribers.manage import SubscriberInput, add
from mailer.tokens import Purpose
from tests.browser.harness import Harness, link_path, seed_papers, smtp_transport

ATOM = "{http://www.w3.org/2005/Atom}"


def subscribe(app: Harness, profile: str = 'diffusion policy, "world model"') -> int:
    return add(
        app.ctx.session_factory,
        SubscriberInput("fay@example.org", profile),
        confirmed=True,
        defaults=app.ctx.defaults,
        now=app.clock() - timedelta(hours=6),
    ).id


def send_digest(app: Harness) -> EmailMessage:
    """Plan and send this period's digest through the real SMTP server; the mail sent."""
    before = app.smtp.count
    assert plan(app.ctx, at=app.clock(), force=True).queued == 1

    async def send() -> int:
        async with smtp_transport(app.smtp) as transport:
            return (await send_queued(app.ctx, transport, RetryPolicy())).sent

    assert asyncio.run(send()) == 1
    assert app.smtp.wait_for(before + 1)
    return app.smtp.messages[-1].message


def test_feed_linked_from_the_digest_lists_its_papers_with_why(
    client: httpx.Client, app: Harness
) -> None:
    subscribe(app)
    mail = send_digest(app)
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and ">Atom feed</a>" in html.get_content()
    response = client.get(link_path(mail, "feed"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    titles = [e.title for e in parsed.entries]
    assert titles == ["Diffusion Policy for Visuomotor Control", "A Survey of World Models"]
    first = parsed.entries[0]
    assert first.link == "https://arxiv.org/abs/2611.00001"
    assert [a.name for a in first.authors] == ["Cheng Chi", "Shuran Song"]
    assert "<b>diffusion</b> <b>policy</b>" in first.summary
    assert "Why: matched diffusion policy" in first.summary
    assert "Why: matched" in parsed.entries[1].summary
    assert "world model" in parsed.entries[1].summary
    assert "fay@example.org" not in response.text  # a feed may be shared; the address is not


def test_feed_is_valid_atom(client: httpx.Client, app: Harness) -> None:
    subscriber_id = subscribe(app)
    send_digest(app)
    response = client.get(f"/feed/{app.ctx.tokens.make(Purpose.FEED, subscriber_id)}")
    root = ET.fromstring(response.content)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):  # RFC 4287 4.1.1
        assert root.find(f"{ATOM}{name}") is not None, name
    self_link = root.find(f"{ATOM}link[@rel='self']")
    assert self_link is not None and self_link.get("href", "").startswith(
        "http://mailer.test/feed/"
    )
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert all(i and i.startswith("urn:uuid:") for i in ids) and len(set(ids)) == 2
    for entry in entries:
        for name in ("id", "title", "updated", "summary"):
            assert entry.find(f"{ATOM}{name}") is not None, name
        assert entry.find(f"{ATOM}link[@rel='alternate']") is not None
    # A second request (new token, same subscriber) names the same feed and entries.
    again = ET.fromstring(
        client.get(f"/feed/{app.ctx.tokens.make(Purpose.FEED, subscriber_id)}").content
    )
    assert again.findtext(f"{ATOM}id") == root.findtext(f"{ATOM}id")


def test_conditional_get_answers_304_until_a_new_digest_is_sent(
    client: httpx.Client, app: Harness
) -> None:
    subscriber_id = subscribe(app)
    send_digest(app)
    path = f"/feed/{app.ctx.tokens.make(Purpose.FEED, subscriber_id)}"
    first = client.get(path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"].startswith("private")
    same = client.get(path, headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get(path, headers={"If-Modified-Since": "not a date"}).status_code == 200

    app.clock.advance(days=1)
    newer = Paper(
        key="arxiv:2611.00009",
        arxiv_id="2611.00009",
        title="World Model Agents Dream",
        abstract="A world model lets agents plan in imagination.",
        authors=("Dana Hafner",),
        url="https://arxiv.org/abs/2611.00009",
        source="test",
    )
    seed_papers(app.ctx, (newer,))
    send_digest(app)
    changed = client.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    titles = [e.title for e in feedparser.parse(changed.content).entries]
    assert titles[0] == "World Model Agents Dream" and len(titles) == 3  # newest digest first


def test_hostile_text_still_gives_a_well_formed_feed(client: httpx.Client, app: Harness) -> None:
    hostile = Paper(
        key="arxiv:2611.00666",
        arxiv_id="2611.00666",
        # Control characters XML cannot carry (NUL never reaches the store: PostgreSQL refuses it).
        title='Diffusion policy \x0b\x08 <script>alert("x")</script> & ]]>',
        abstract="A diffusion policy\x1f with <b>markup</b> & control characters.",
        authors=("Eve <eve@evil>",),
        url="javascript:alert(1)",
        source="test",
    )
    seed_papers(app.ctx, (hostile,))
    subscriber_id = subscribe(app, profile="diffusion policy")
    send_digest(app)
    response = client.get(f"/feed/{app.ctx.tokens.make(Purpose.FEED, subscriber_id)}")
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert "<script>" not in response.text and "javascript:" not in response.text
    titles = [e.title for e in parsed.entries]
    assert any("<script>" in t for t in titles)  # shown as text, not markup


def test_wrong_forged_or_erased_feed_links_are_404(client: httpx.Client, app: Harness) -> None:
    subscriber_id = subscribe(app)
    tokens = app.ctx.tokens
    assert client.get(f"/feed/{tokens.make(Purpose.UNSUBSCRIBE, subscriber_id)}").status_code == 404
    assert client.get("/feed/not-a-token").status_code == 404
    assert client.get(f"/feed/{tokens.make(Purpose.FEED, 999_999)}").status_code == 404
    empty = client.get(f"/feed/{tokens.make(Purpose.FEED, subscriber_id)}")
    assert empty.status_code == 200 and feedparser.parse(empty.content).entries == []
    assert client.head(f"/feed/{tokens.make(Purpose.FEED, subscriber_id)}").status_code == 200
