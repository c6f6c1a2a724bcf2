"""The FastAPI app factory: pages for subscribers and a health check for operators."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import text

from mailer.db import fetches as fetch_repo
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.errors import MailerError, TokenError
from mailer.models import DigestStatus, SubscriberStatus
from mailer.pipeline import Context, render_stored
from mailer.tokens import Purpose

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
    " img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _pages() -> Environment:
    return Environment(
        loader=PackageLoader("mailer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )


def create_app(ctx: Context) -> FastAPI:
    """Build the web app around a pipeline context."""
    app = FastAPI(title="mailer", docs_url=None, redoc_url=None, openapi_url=None)
    pages = _pages()

    def page(title: str, body: str, status: int = 200) -> HTMLResponse:
        html = pages.get_template("web/page.html.j2").render(title=title, body=body)
        return HTMLResponse(html, status_code=status)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return page(
            "Paper digest",
            "A personal digest of new research papers, matched against your keywords. "
            "The signup form is coming soon; until then, ask the operator to add you.",
        )

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse(_health(ctx))

    @app.get("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe_page(token: str) -> HTMLResponse:
        try:
            ctx.tokens.read_id(Purpose.UNSUBSCRIBE, token)
        except TokenError as exc:
            return page("Link not valid", str(exc), status=400)
        html = pages.get_template("web/unsubscribe.html.j2").render(title="Unsubscribe")
        return HTMLResponse(html)

    @app.post("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe(token: str) -> HTMLResponse:
        # RFC 8058 one-click: no cookie and no CSRF token; the signed token is the authority.
        try:
            subscriber_id = ctx.tokens.read_id(Purpose.UNSUBSCRIBE, token)
        except TokenError as exc:
            return page("Link not valid", str(exc), status=400)
        _unsubscribe(ctx, subscriber_id)
        return page("Unsubscribed", "You will get no more digests. Sorry to see you go.")

    @app.get("/digest/{token}", response_class=HTMLResponse)
    def view_digest(token: str) -> HTMLResponse:
        try:
            digest_id = ctx.tokens.read_id(Purpose.DIGEST, token)
            result = render_stored(ctx, digest_id)
        except MailerError as exc:
            return page("Digest not found", str(exc), status=404)
        return HTMLResponse(result.rendered.html)

    return app


def _unsubscribe(ctx: Context, subscriber_id: int) -> None:
    with ctx.session_factory.begin() as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None or row.status == SubscriberStatus.UNSUBSCRIBED.value:
            return
        row.status = SubscriberStatus.UNSUBSCRIBED.value
        row.unsubscribed_at = ctx.clock()
        row.next_due_at = None


def _health(ctx: Context) -> dict[str, Any]:
    """Database reachability, last fetch per source, last send."""
    report: dict[str, Any] = {"status": "ok", "checked_at": datetime.now(UTC).isoformat()}
    try:
        with ctx.session_factory() as session:
            session.execute(text("SELECT 1"))
            report["database"] = "ok"
            report["sources"] = {
                state.name: {
                    "last_success": _iso(state.last_success_at),
                    "last_attempt": _iso(state.last_attempt_at),
                    "last_error": state.last_error,
                }
                for state in fetch_repo.last_fetches(session)
            }
            last_sent = (
                session.query(DigestRow.sent_at)
                .filter(DigestRow.status == DigestStatus.SENT.value)
                .order_by(DigestRow.sent_at.desc())
                .limit(1)
                .scalar()
            )
            report["last_send"] = _iso(last_sent)
    except Exception as exc:
        report["status"] = "error"
        report["database"] = f"error: {type(exc).__name__}"
    return report


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
