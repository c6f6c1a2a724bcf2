"""Votes from the email: the "more / less like this" landing page and the rating page.

A GET never records anything (link scanners follow GETs): the landing page records the vote
by script at once, or by its one button without script. A POST records it with the signed
token as the only credential (no cookie, no CSRF field, an empty body is enough), as the
one-click unsubscribe does; ``action=undo`` in the body takes the vote back.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.db import digests as digest_repo
from mailer.db import feedback as feedback_repo
from mailer.errors import MailerError, NotFound, TokenError
from mailer.relevance import Vote
from mailer.rendering.views import safe_url
from mailer.subscribers import feedback
from mailer.tokens import FeedbackClaim, Purpose
from mailer.web.deps import NO_STORE, Web, web_of
from mailer.web.forms import FormError, read_form

routes = APIRouter()


def _invalid(web: Web, exc: MailerError) -> Response:
    text = f"{exc}. Use the links in your latest digest email."
    return web.pages.message("Link not valid", text, 400, link="/", link_text="Home page")


def _page(web: Web, claim: FeedbackClaim, voted: feedback.Voted, state: str) -> Response:
    choice = Vote.from_word(claim.vote)
    context: dict[str, Any] = {
        "title": "More like this" if choice is Vote.MORE else "Less like this",
        "paper": voted.paper,
        "paper_url": safe_url(voted.paper.url) or safe_url(voted.paper.hf_url),
        "label": choice.label,
        "state": state,
        "current": voted.vote.label if voted.vote is not None else None,
    }
    return web.pages.response("feedback", 200, NO_STORE, **context)


def _claim(web: Web, token: str) -> FeedbackClaim:
    return web.ctx.tokens.read_feedback(token)


@routes.get("/feedback/{token}", response_class=HTMLResponse)
def feedback_page(request: Request, token: str) -> Response:
    """The paper, the vote the link stands for, and a button; nothing is recorded."""
    web = web_of(request)
    try:
        claim = _claim(web, token)
        voted = feedback.current(web.ctx.session_factory, claim.subscriber_id, claim.paper_id)
    except (TokenError, NotFound) as exc:
        return _invalid(web, exc)
    recorded = voted.vote is not None and voted.vote.word == claim.vote
    return _page(web, claim, voted, "recorded" if recorded else "ask")


@routes.post("/feedback/{token}", response_class=HTMLResponse)
async def record_feedback(request: Request, token: str) -> Response:
    """Record the link's vote (the last vote on a paper wins), or undo it."""
    web = web_of(request)
    try:
        claim = _claim(web, token)
        values = await read_form(request)
    except TokenError as exc:
        return _invalid(web, exc)
    except FormError as exc:
        return web.pages.message("Request not accepted", str(exc), 400)
    undo = values.get("action") == "undo"
    try:
        voted = await run_in_threadpool(_apply, web, claim, undo)
    except NotFound as exc:
        return _invalid(web, exc)
    return _page(web, claim, voted, "undone" if undo else "recorded")


def _apply(web: Web, claim: FeedbackClaim, undo: bool) -> feedback.Voted:
    sessions, choice = web.ctx.session_factory, Vote.from_word(claim.vote)
    if undo:
        return feedback.undo(sessions, claim.subscriber_id, claim.paper_id, choice)
    return feedback.vote(
        sessions, claim.subscriber_id, claim.paper_id, choice, origin="email", now=web.ctx.clock()
    )


@routes.get("/rate/{token}", response_class=HTMLResponse)
def rate_page(request: Request, token: str) -> Response:
    """One digest's papers, each with a "more like this" and a "less like this" button."""
    web = web_of(request)
    try:
        digest_id = web.ctx.tokens.read_id(Purpose.RATE, token)
    except TokenError as exc:
        return _invalid(web, exc)
    with web.ctx.session_factory() as session:
        stored = digest_repo.load_digest(session, digest_id)
        if stored is None:
            return web.pages.message("Digest not found", "This digest is no longer stored.", 404)
        paper_ids = [m.paper.id for m in stored.matches if m.paper.id is not None]
        votes = feedback_repo.votes_on(session, stored.subscriber.id, paper_ids)
    make, sid = web.ctx.tokens.feedback, stored.subscriber.id
    papers = [
        {
            "paper": m.paper,
            "url": safe_url(m.paper.url) or safe_url(m.paper.hf_url),
            "more": make(sid, m.paper.id, "more"),
            "less": make(sid, m.paper.id, "less"),
            "vote": Vote(votes[m.paper.id]).label if m.paper.id in votes else None,
        }
        for m in stored.matches
        if m.paper.id is not None
    ]
    context = {"title": "Rate these papers", "papers": papers, "period": stored.period.label}
    return web.pages.response("rate", 200, NO_STORE, **context)
