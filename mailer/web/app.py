"""The FastAPI app factory: pages for subscribers and a health check for operators."""

from __future__ import annotations

import secrets
from datetime import datetime
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mailer.context import Context
from mailer.db import digests as digest_repo
from mailer.db import fetches as fetch_repo
from mailer.db.session import ping
from mailer.ops.health import public_source_name, source_status
from mailer.subscribers.signup import TransportFactory
from mailer.web import (
    feed_routes,
    feedback_routes,
    papers_routes,
    signup_routes,
    subscriber_routes,
)
from mailer.web.catalog import Catalog
from mailer.web.csrf import Csrf
from mailer.web.deps import Limits, Web
from mailer.web.fast_path import FastPath
from mailer.web.page_cache import PageCache
from mailer.web.pages import Pages
from mailer.web.preview import RecentPapers
from mailer.web.security import BodyLimit, SecurityHeaders

STATIC_TYPES = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}


def create_app(
    ctx: Context,
    *,
    transport_factory: TransportFactory | None = None,
    demo: bool = False,
    secret_key: str | None = None,
    limits: Limits | None = None,
    cache_seconds: float = 60.0,
) -> FastAPI:
    """Build the web app around a pipeline context.

    ``transport_factory`` makes a Transport for confirmation and welcome emails (sent after
    the response, never in it); without one no email is sent. ``secret_key`` signs the
    CSRF cookie: pass the app's secret so every web process accepts every form; without
    it a random per-process key is used. ``demo`` shows the confirmation link on the page.
    ``cache_seconds``: how long the public papers pages are cached and how often the search
    index looks for new papers. The search index is built on the first search; a server warms
    it at start (``web.catalog.index.warm``).
    """
    app = FastAPI(title="mailer", docs_url=None, redoc_url=None, openapi_url=None)
    web = Web(
        ctx=ctx,
        pages=Pages(demo=demo),
        csrf=Csrf(secret_key or secrets.token_urlsafe(32)),
        recent=RecentPapers(ctx.session_factory, ctx.clock),
        transport_factory=transport_factory,
        limits=limits or Limits(),
        catalog=Catalog(ctx, cache_seconds=cache_seconds),
        page_cache=PageCache(cache_seconds),
        demo=demo,
        secure_cookies=ctx.base_url.startswith("https://"),
    )
    app.add_middleware(
        BodyLimit,
        limit=web.limits.max_body_bytes,
        larger={"/seed/": web.limits.max_upload_bytes},
    )
    app.add_middleware(SecurityHeaders)
    _error_pages(app, web)
    app.state.web = web
    app.include_router(signup_routes.routes)
    app.include_router(subscriber_routes.routes)
    app.include_router(feed_routes.routes)
    app.include_router(papers_routes.routes)
    app.include_router(feedback_routes.routes)
    static = _static(app)
    app.add_middleware(FastPath, web=web, static=static)  # outermost: before any routing

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse(_health(ctx))

    return app


def _error_pages(app: FastAPI, web: Web) -> None:
    """Framework errors (404, 405, bad parameters) as pages, never a traceback."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Page not found", 405: "Method not allowed"}
        title = titles.get(exc.status_code, "Request not accepted")
        return web.pages.message(
            title, str(exc.detail), exc.status_code, link="/", link_text="Home"
        )

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> Response:
        text = "The request has a missing or malformed parameter."
        return web.pages.message("Request not accepted", text, 400, link="/", link_text="Home")


def _static(app: FastAPI) -> dict[str, tuple[bytes, str]]:
    """The page stylesheet and script, loaded once (CSP allows only same-origin files)."""
    folder = resources.files("mailer.web") / "static"
    files = {name: (folder / name).read_bytes() for name in STATIC_TYPES}

    # Async: nothing here waits, so a worker thread would only add a hop per request.
    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in files:
            return HTMLResponse("not found", status_code=404)
        headers = {"Cache-Control": "public, max-age=3600"}
        return Response(files[name], media_type=STATIC_TYPES[name], headers=headers)

    return {name: (body, STATIC_TYPES[name]) for name, body in files.items()}


def _health(ctx: Context) -> dict[str, Any]:
    """Database reachability, each source's status and last fetch, last send."""
    report: dict[str, Any] = {"status": "ok", "checked_at": ctx.clock().isoformat()}
    try:
        with ctx.session_factory() as session:
            ping(session)
            report["database"] = "ok"
            # Public: a status per source, never its error text, credentials or local path
            # (the operator reads those in `mailer stats` and the logs).
            report["sources"] = {
                public_source_name(state.name): {
                    "status": source_status(state.last_error, state.last_success_at),
                    "last_success": _iso(state.last_success_at),
                    "last_attempt": _iso(state.last_attempt_at),
                }
                for state in fetch_repo.last_fetches(session)
            }
            report["last_send"] = _iso(digest_repo.last_sent_at(session))
    except Exception as exc:
        report["status"] = "error"
        report["database"] = f"error: {type(exc).__name__}"
    return report


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
