"""Pages behind a subscriber's signed links: preferences, unsubscribe and the digest online."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.errors import InputError, MailerError, NotFound, TokenError
from mailer.models import Subscriber, SubscriberStatus
from mailer.pipeline.render import render_stored
from mailer.rendering.views import schedule_label
from mailer.subscribers import feedback
from mailer.tokens import Purpose
from mailer.web import account, taste
from mailer.web.deps import NO_STORE, Web, web_of
from mailer.web.forms import Choices, FormError, check_choices, read_form
from mailer.web.pages import timezone_choices
from mailer.web.security import DIGEST_CSP

NOTICES = {
    "save": "Your preferences are saved.",
    "pause": "Your digest is paused. Resume it whenever you like.",
    "resume": "Your digest is back on.",
    "forget": "Removed: that paper no longer counts either way.",
}

PAST_DIGESTS = 30  # listed on the preferences page, newest first

routes = APIRouter()


def _invalid_link(web: Web, exc: MailerError) -> Response:
    text = f"{exc}. Use the link in your latest digest email."
    return web.pages.message("Link not valid", text, 400, link="/", link_text="Home page")


def _choices_of(subscriber: Subscriber) -> Choices:
    return Choices(
        profile=subscriber.profile,
        frequency=subscriber.frequency.value,
        weekday=str(subscriber.weekday),
        send_time=subscriber.send_time,
        timezone=subscriber.timezone,
    )


def _preferences_page(
    web: Web,
    subscriber: Subscriber,
    choices: Choices | None = None,
    *,
    errors: dict[str, str] | None = None,
    notice: str = "",
    status: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "title": "Your digest preferences",
        "subscriber": subscriber,
        "choices": choices or _choices_of(subscriber),
        "errors": errors or {},
        "notice": notice,
        "schedule": schedule_label(subscriber),
        "timezones": timezone_choices(),
        "unsubscribe": web.ctx.link(Purpose.UNSUBSCRIBE, subscriber.id),
        "digests": [
            (d, web.ctx.link(Purpose.DIGEST, d.id))
            for d in account.recent_digests(web.ctx, subscriber.id, limit=PAST_DIGESTS)
        ],
        "feed": web.ctx.link(Purpose.FEED, subscriber.id),
        "examples": taste.examples_context(web.ctx, subscriber.id),
        "seed_action": "/seed/" + web.ctx.tokens.make(Purpose.PREFERENCES, subscriber.id),
    }
    return web.pages.response("preferences", status, NO_STORE, **context)


@routes.get("/preferences/{token}", response_class=HTMLResponse)
def preferences(request: Request, token: str) -> Response:
    """The preferences form, filled in with the subscriber's current choices."""
    web = web_of(request)
    try:
        subscriber = account.load(web.ctx, web.ctx.tokens.read_id(Purpose.PREFERENCES, token))
    except (TokenError, NotFound) as exc:
        return _invalid_link(web, exc)
    return _preferences_page(web, subscriber)


# No CSRF token here: the signed link is a secret that a cross-site attacker cannot know.
@routes.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str) -> Response:
    """Save choices, or pause / resume (the ``action`` field says which)."""
    web = web_of(request)
    try:
        subscriber_id = web.ctx.tokens.read_id(Purpose.PREFERENCES, token)
        subscriber = await run_in_threadpool(account.load, web.ctx, subscriber_id)
        values = await read_form(request)
    except (TokenError, NotFound) as exc:
        return _invalid_link(web, exc)
    except FormError as exc:
        return web.pages.message("Form not accepted", str(exc), 400)
    if subscriber.status not in (SubscriberStatus.ACTIVE, SubscriberStatus.PAUSED):
        return _preferences_page(web, subscriber, status=409)
    return await run_in_threadpool(_apply, web, subscriber, values)


def _apply(web: Web, subscriber: Subscriber, values: dict[str, str]) -> Response:
    action = values.get("action", "save")
    now = web.ctx.clock()
    if action == "forget":
        return _forget(web, subscriber, values.get("example", ""))
    choices = Choices.from_form(values, web.ctx.defaults)
    errors = {} if action in ("pause", "resume") else check_choices(choices)
    if errors:
        return _preferences_page(web, subscriber, choices, errors=errors, status=400)
    try:
        if action in ("pause", "resume"):
            updated = account.set_paused(web.ctx, subscriber.id, action == "pause", now)
        else:
            updated = account.update_choices(web.ctx, subscriber.id, choices, now)
    except InputError as exc:  # e.g. unsubscribed in another tab a moment ago
        errors = {"form": str(exc)}
        return _preferences_page(
            web, account.load(web.ctx, subscriber.id), errors=errors, status=409
        )
    return _preferences_page(web, updated, notice=NOTICES.get(action, NOTICES["save"]))


def _forget(web: Web, subscriber: Subscriber, example: str) -> Response:
    """Remove one liked or disliked paper from what the digest learns from."""
    if not example.isdigit() or not feedback.forget(
        web.ctx.session_factory, subscriber.id, int(example)
    ):
        errors = {"form": "That paper is not among your examples (removed already?)."}
        return _preferences_page(web, subscriber, errors=errors, status=400)
    return _preferences_page(web, subscriber, notice=NOTICES["forget"])


@routes.post("/seed/{token}", response_class=HTMLResponse)
async def seed_library(request: Request, token: str) -> Response:
    """Add every paper of an uploaded library file as "more like this", or change nothing."""
    web = web_of(request)
    try:
        subscriber_id = web.ctx.tokens.read_id(Purpose.PREFERENCES, token)
        subscriber = await run_in_threadpool(account.load, web.ctx, subscriber_id)
        data = await taste.read_upload(request)
    except (TokenError, NotFound) as exc:
        return _invalid_link(web, exc)
    except FormError as exc:
        return _preferences_page(web, subscriber, errors={"form": str(exc)}, status=400)
    try:
        report = await run_in_threadpool(
            feedback.seed, web.ctx.session_factory, subscriber_id, data, web.ctx.clock()
        )
    except InputError as exc:
        message = f"Nothing was added: {exc}."
        return _preferences_page(web, subscriber, errors={"form": message}, status=400)
    notice = (
        f'Added {report.added} papers from your {report.format} file as "more like this"'
        + (f" ({report.replaced} were there already)" if report.replaced else "")
        + (f"; {report.untitled} entries without a title were skipped" if report.untitled else "")
        + "."
    )
    return _preferences_page(web, subscriber, notice=notice)


@routes.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> Response:
    """A page with a button: link scanners follow GETs, so a GET never unsubscribes."""
    web = web_of(request)
    try:
        web.ctx.tokens.read_id(Purpose.UNSUBSCRIBE, token)
    except TokenError as exc:
        return _invalid_link(web, exc)
    return web.pages.response("unsubscribe", 200, NO_STORE, title="Unsubscribe")


# RFC 8058 one-click: no cookie and no CSRF token; the signed token is the authority,
# and whatever the body says (List-Unsubscribe=One-Click or the button), it unsubscribes.
@routes.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(request: Request, token: str) -> Response:
    """Unsubscribe at once."""
    web = web_of(request)
    try:
        subscriber_id = web.ctx.tokens.read_id(Purpose.UNSUBSCRIBE, token)
    except TokenError as exc:
        return _invalid_link(web, exc)
    account.unsubscribe(web.ctx, subscriber_id, web.ctx.clock())
    return web.pages.message(
        "Unsubscribed",
        "You will get no more digests. Sorry to see you go.",
        link="/",
        link_text="Subscribe again",
    )


@routes.get("/digest/{token}", response_class=HTMLResponse)
def view_digest(request: Request, token: str) -> Response:
    """A stored digest in the browser, as it was mailed."""
    web = web_of(request)
    try:
        digest_id = web.ctx.tokens.read_id(Purpose.DIGEST, token)
        result = render_stored(web.ctx, digest_id)
    except TokenError as exc:
        return _invalid_link(web, exc)
    except MailerError as exc:
        return web.pages.message("Digest not found", str(exc), 404)
    headers = {"Content-Security-Policy": DIGEST_CSP, **NO_STORE}
    return HTMLResponse(result.rendered.html, headers=headers)
