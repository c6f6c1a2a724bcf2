"""Signup pages: the form with its preview, the subscribe POST, confirmation and a new link."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from mailer.errors import InputError, TokenError, TokenExpired
from mailer.rendering.views import schedule_label
from mailer.subscribers import signup
from mailer.tokens import Purpose
from mailer.web.csrf import COOKIE, FIELD
from mailer.web.deps import NO_STORE, Web, client_ip, web_of
from mailer.web.forms import MAX_FIELD_CHARS, FormError, SignupForm, read_form
from mailer.web.preview import PreviewResult
from mailer.web.signup_page import HONEYPOT, set_csrf_cookie, signup_html

log = logging.getLogger(__name__)

routes = APIRouter()


def _with_csrf_cookie(web: Web, response: Response, token: str) -> Response:
    return set_csrf_cookie(response, token, web.secure_cookies)


def _signup_page(
    request: Request, form: SignupForm, preview: PreviewResult | None = None, status: int = 200
) -> Response:
    web = web_of(request)
    token = web.csrf.current(request.cookies.get(COOKIE))
    html = signup_html(web.pages, form, preview, token)
    response = HTMLResponse(html, status_code=status, headers=NO_STORE)
    return _with_csrf_cookie(web, response, token)


def _inbox_page(web: Web, pending: signup.PendingConfirmation | None) -> Response:
    # Demo only: mail goes to a local Maildir, so show the link a newcomer would get.
    demo_link = None
    if web.demo and pending is not None:
        demo_link = web.ctx.link(Purpose.CONFIRM, pending.subscriber_id)
    return web.pages.response(
        "inbox",
        200,
        NO_STORE,
        title="Check your inbox",
        hours=signup.CONFIRM_VALID_HOURS,
        demo_link=demo_link,
    )


def _throttled(web: Web, retry_after: int, text: str) -> Response:
    headers = {"Retry-After": str(retry_after), **NO_STORE}
    return web.pages.message("Too many requests", text, 429, headers=headers)


def _resend_page(request: Request, problem: str, status: int) -> Response:
    web = web_of(request)
    token = web.csrf.current(request.cookies.get(COOKIE))
    response = web.pages.response(
        "expired",
        status,
        NO_STORE,
        title="Link not valid",
        problem=problem,
        csrf_field=FIELD,
        csrf_token=token,
    )
    return _with_csrf_cookie(web, response, token)


async def _checked_form(request: Request) -> dict[str, str] | Response:
    """The submitted fields, or the error page for an unreadable form or a failed CSRF check."""
    web = web_of(request)
    try:
        values = await read_form(request)
    except FormError as exc:
        return web.pages.message("Form not accepted", str(exc), 400)
    if not web.csrf.check(request.cookies.get(COOKIE), values.get(FIELD)):
        text = (
            "This form has expired or your browser did not send its cookie. "
            "Reload the page and submit it again (cookies must be allowed for this site)."
        )
        return web.pages.message("Form expired", text, 403, link="/", link_text="Reload the form")
    return values


def _send_later(web: Web, background: BackgroundTasks, pending: signup.PendingConfirmation) -> None:
    if web.transport_factory is not None:
        background.add_task(signup.send_confirmation, web.ctx, web.transport_factory, pending)


def _blank_form(request: Request) -> Response:
    """The empty signup form (usually answered by the fast path before reaching here)."""
    web = web_of(request)
    token = web.blank_form.token(request.cookies.get(COOKIE))
    return web.blank_form.response(token, NO_STORE)


@routes.get("/", response_class=HTMLResponse)
async def index(request: Request) -> Response:
    """The signup form; ``?profile=`` fills in the keywords (and previews them)."""
    web = web_of(request)
    profile = request.query_params.get("profile", "")[:MAX_FIELD_CHARS].replace("\0", "")
    if not profile.strip():
        return _blank_form(request)
    form = SignupForm.from_form({"profile": profile}, web.ctx.defaults)
    preview = None
    if not web.preview_throttle.hit(client_ip(request)):
        preview = await run_in_threadpool(web.recent.preview, profile)
    return _signup_page(request, form, preview)


@routes.get("/preview", response_class=HTMLResponse)
def preview(request: Request, q: str = "") -> Response:
    """The preview fragment for a profile: the recent papers it matches, highlighted."""
    web = web_of(request)
    retry = web.preview_throttle.hit(client_ip(request))
    if retry:
        headers = {"Retry-After": str(retry)}
        return web.pages.response("_preview", 429, headers, result=None, throttled=True)
    result = web.recent.preview(q[:MAX_FIELD_CHARS])
    return web.pages.response("_preview", 200, None, result=result, throttled=False)


@routes.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request, background: BackgroundTasks) -> Response:
    """Sign up (or preview without JavaScript); the same page for new and known addresses."""
    web = web_of(request)
    values = await _checked_form(request)
    if isinstance(values, Response):
        return values
    form = SignupForm.from_form(values, web.ctx.defaults)
    if values.get("action") == "preview":
        result = await run_in_threadpool(web.recent.preview, form.choices.profile)
        return _signup_page(request, form, result)
    if values.get(HONEYPOT):
        return _inbox_page(web, None)  # a bot: answer as usual, do nothing
    retry = web.signup_throttle.hit(client_ip(request))
    if retry:
        return _throttled(web, retry, "Too many signups from your network. Try again later.")
    if not form.validate():
        return _signup_page(request, form, status=400)
    try:
        pending = await run_in_threadpool(signup.request, web.ctx, form.to_input(), web.ctx.clock())
    except signup.Throttled:
        # The same page as for any other address: a 429 here would tell a stranger that
        # this address was just submitted. Only the per-IP limit above may answer 429.
        log.info("signup: confirmation not sent, one went to this address recently")
        return _inbox_page(web, None)
    except InputError as exc:
        form.errors["form"] = str(exc)
        return _signup_page(request, form, status=400)
    if pending is not None:  # None: a suppressed address, which gets the same page and no mail
        _send_later(web, background, pending)
    return _inbox_page(web, pending)


@routes.post("/resend", response_class=HTMLResponse)
async def resend(request: Request, background: BackgroundTasks) -> Response:
    """A new confirmation link for a pending address; the same answer for any address."""
    web = web_of(request)
    values = await _checked_form(request)
    if isinstance(values, Response):
        return values
    retry = web.signup_throttle.hit(client_ip(request))
    if retry:
        return _throttled(web, retry, "Too many requests from your network. Try again later.")
    try:
        pending = await run_in_threadpool(
            signup.resend, web.ctx, values.get("email", ""), web.ctx.clock()
        )
    except signup.Throttled:
        log.info("resend: confirmation not sent, one went to this address recently")
        return _inbox_page(web, None)  # the same answer as for any address (see subscribe)
    except InputError as exc:
        return _resend_page(request, str(exc), 400)
    if pending is not None:
        _send_later(web, background, pending)
    return _inbox_page(web, pending)


@routes.get("/confirm/{token}", response_class=HTMLResponse)
async def confirm(request: Request, token: str, background: BackgroundTasks) -> Response:
    """Activate a pending subscription; a clear page with a way out for a bad link."""
    web = web_of(request)
    try:
        done = await run_in_threadpool(signup.confirm, web.ctx, token, web.ctx.clock())
    except TokenExpired:
        return _resend_page(request, "This confirmation link has expired.", 400)
    except TokenError as exc:
        return _resend_page(request, f"This confirmation link does not work: {exc}.", 400)
    if done.newly_active and web.transport_factory is not None:
        welcome = signup.welcome_message(web.ctx, done.subscriber, web.ctx.clock())
        background.add_task(signup.deliver, web.transport_factory, welcome, done.subscriber.email)
    return web.pages.response("confirmed", 200, NO_STORE, **_confirmed(web, done))


def _confirmed(web: Web, done: signup.Confirmed) -> dict[str, Any]:
    return {
        "title": "You are subscribed" if done.newly_active else "Already confirmed",
        "newly": done.newly_active,
        "schedule": schedule_label(done.subscriber),
        "preferences": web.ctx.link(Purpose.PREFERENCES, done.subscriber.id),
    }
