"""Votes from the email and the reader's examples on the preferences page, over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import httpx
from itsdangerous.encoding import base64_encode
from sqlalchemy import select

from mailer.db.tables import DigestRow, FeedbackRow, PaperRow, SubscriberRow
from mailer.pipeline.plan import plan
from mailer.subscribers.manage import SubscriberInput, add, remove
from mailer.tokens import Purpose
from tests.browser.harness import Harness

BIBTEX = b"""@article{chi2023,
  title = {{Diffusion} Policy: Visuomotor Policy Learning via Action Diffusion},
  abstract = {We learn a diffusion policy that denoises robot actions.},
  eprint = {2303.04137}, archivePrefix = {arXiv}
}
@inproceedings{ha2018, title = {World Models}, abstract = {Agents learn a world model.}}
"""


def reader(app: Harness, email: str = "erin@example.org") -> int:
    return add(
        app.ctx.session_factory,
        SubscriberInput(email, "diffusion policy"),
        confirmed=True,
        defaults=app.ctx.defaults,
        now=app.clock() - timedelta(hours=6),
    ).id


def paper_id(app: Harness, key: str = "arxiv:2611.00001") -> int:
    with app.ctx.session_factory() as session:
        return session.scalars(select(PaperRow.id).where(PaperRow.key == key)).one()


def votes(app: Harness) -> list[tuple[int, int | None, int, str]]:
    with app.ctx.session_factory() as session:
        rows = session.scalars(select(FeedbackRow).order_by(FeedbackRow.id))
        return [(r.subscriber_id, r.paper_id, r.vote, r.origin) for r in rows]


def link(app: Harness, subscriber_id: int, paper: int, vote: str) -> str:
    return f"/feedback/{app.ctx.tokens.feedback(subscriber_id, paper, vote)}"


def test_a_get_records_nothing_and_shows_the_paper_and_a_button(
    client: httpx.Client, app: Harness
) -> None:
    page = client.get(link(app, reader(app), paper_id(app), "less"))
    assert page.status_code == 200
    assert "Diffusion Policy for Visuomotor Control" in page.text
    assert "Record: less like this" in page.text and "data-autovote" in page.text
    assert votes(app) == []
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp


def test_a_post_records_the_vote_at_once_the_last_vote_wins_and_undo_takes_it_back(
    client: httpx.Client, app: Harness
) -> None:
    subscriber_id, paper = reader(app), paper_id(app)
    less, more = link(app, subscriber_id, paper, "less"), link(app, subscriber_id, paper, "more")
    recorded = client.post(less)  # empty body, no cookie, no CSRF field
    assert (
        recorded.status_code == 200 and "Recorded: <strong>less like this</strong>" in recorded.text
    )
    assert client.post(less).status_code == 200  # idempotent
    assert votes(app) == [(subscriber_id, paper, -1, "email")]
    assert "Recorded" in client.get(less).text  # the page knows it is recorded
    client.post(more)
    assert votes(app) == [(subscriber_id, paper, 1, "email")]
    stale = client.post(less, data={"action": "undo"})  # "less" is no longer the vote: kept
    assert "your vote on this paper is now more like this" in stale.text
    undone = client.post(more, data={"action": "undo"})
    assert "no longer counts either way" in undone.text and votes(app) == []


def test_forged_and_swapped_tokens_are_refused_and_change_nothing(
    client: httpx.Client, app: Harness
) -> None:
    alice, bob, paper = reader(app), reader(app, "bob@example.org"), paper_id(app)
    token = app.ctx.tokens.feedback(alice, paper, "less")
    # A feedback token is not an unsubscribe token, nor the other way round.
    assert client.post(f"/unsubscribe/{token}").status_code == 400
    unsubscribe = app.ctx.tokens.make(Purpose.UNSUBSCRIBE, alice)
    assert client.post(f"/feedback/{unsubscribe}").status_code == 400
    # Alice's signature over a payload naming Bob: the signature no longer fits.
    payload, rest = token.split(".", 1)
    swapped = base64_encode(f'"{bob}.{paper}.l"'.encode()).decode() + "." + rest
    assert payload != swapped.split(".")[0]
    for bad in (swapped, token[:-2] + "xx", "nonsense", "a.b.c", "%00"):
        for response in (client.get(f"/feedback/{bad}"), client.post(f"/feedback/{bad}")):
            assert response.status_code in (400, 404), bad
    missing = app.ctx.tokens.feedback(alice, 999_999, "more")
    assert client.post(f"/feedback/{missing}").status_code == 400
    with app.ctx.session_factory() as session:
        statuses = list(session.scalars(select(SubscriberRow.status)))
    assert statuses == ["active", "active"] and votes(app) == []
    remove(app.ctx.session_factory, bob, app.clock())
    gone = client.post(link(app, bob, paper, "more"))
    assert gone.status_code == 400 and votes(app) == []


def test_the_rate_page_lists_a_digests_papers_with_both_buttons(
    client: httpx.Client, app: Harness
) -> None:
    subscriber_id = reader(app)
    assert plan(app.ctx, at=app.clock(), force=True).queued == 1
    with app.ctx.session_factory() as session:
        digest_id = session.scalars(select(DigestRow.id)).one()
    page = client.get(f"/rate/{app.ctx.tokens.make(Purpose.RATE, digest_id)}")
    assert page.status_code == 200 and "Diffusion Policy for Visuomotor Control" in page.text
    assert page.text.count("More like this</button>") == 1
    more = page.text.split('action="')[1].split('"')[0]
    assert client.post(more).status_code == 200
    assert votes(app) == [(subscriber_id, paper_id(app), 1, "email")]
    assert (
        "Your vote: more like this"
        in client.get(f"/rate/{app.ctx.tokens.make(Purpose.RATE, digest_id)}").text
    )
    assert client.get(f"/rate/{app.ctx.tokens.make(Purpose.RATE, 999_999)}").status_code == 404
    assert client.get(f"/rate/{app.ctx.tokens.make(Purpose.DIGEST, digest_id)}").status_code == 400


def prefs(app: Harness, subscriber_id: int) -> str:
    return f"/preferences/{app.ctx.tokens.make(Purpose.PREFERENCES, subscriber_id)}"


def seed_path(app: Harness, subscriber_id: int) -> str:
    return f"/seed/{app.ctx.tokens.make(Purpose.PREFERENCES, subscriber_id)}"


def test_preferences_list_liked_and_disliked_papers_and_what_was_learned(
    client: httpx.Client, app: Harness
) -> None:
    subscriber_id = reader(app)
    client.post(link(app, subscriber_id, paper_id(app), "more"))
    client.post(link(app, subscriber_id, paper_id(app, "arxiv:2611.00002"), "less"))
    page = client.get(prefs(app, subscriber_id))
    assert "What your digest learned" in page.text
    assert "Papers you liked" in page.text and "Papers you did not want" in page.text
    assert "More of: <strong>" in page.text and "diffusion" in page.text.split("More of:")[1]
    with app.ctx.session_factory() as session:
        disliked = session.scalars(select(FeedbackRow.id).where(FeedbackRow.vote == -1)).one()
    removed = client.post(
        prefs(app, subscriber_id), data={"action": "forget", "example": str(disliked)}
    )
    assert removed.status_code == 200 and "Removed" in removed.text
    assert [v[2] for v in votes(app)] == [1]
    again = client.post(
        prefs(app, subscriber_id), data={"action": "forget", "example": str(disliked)}
    )
    assert again.status_code == 400


def test_uploading_a_library_seeds_examples_and_a_bad_file_changes_nothing(
    client: httpx.Client, app: Harness
) -> None:
    subscriber_id = reader(app)
    files = {"library": ("library.bib", BIBTEX, "application/x-bibtex")}
    done = client.post(seed_path(app, subscriber_id), files=files)
    assert done.status_code == 200 and "Added 2 papers from your BibTeX file" in done.text
    assert [(v[2], v[3]) for v in votes(app)] == [(1, "seed"), (1, "seed")]
    assert "World Models" in done.text and "(from your library)" in done.text
    for name, data in (("broken.bib", b"@article{x, title={unclosed"), ("x.txt", b"not ids")):
        bad = client.post(
            seed_path(app, subscriber_id), files={"library": (name, data, "text/plain")}
        )
        assert bad.status_code == 400 and "Nothing was added" in bad.text
    assert client.post(seed_path(app, subscriber_id), data={"x": "1"}).status_code == 400
    huge = {"library": ("big.txt", b"2303.04137\n" * 300_000, "text/plain")}
    assert client.post(seed_path(app, subscriber_id), files=huge).status_code == 413
    assert len(votes(app)) == 2
