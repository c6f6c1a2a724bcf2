"""Answers the hot GETs from memory before the framework runs: cached papers pages, the blank
signup form, the static files.

A cached papers page, the empty form (only its CSRF token differs per visitor) and the two
static files are the same bytes for everyone, so routing, dependency solving and response
objects would be most of their cost (bench/web.py: about three times the requests per second
without them). Everything else, and every miss, goes on to the app unchanged, which fills the
cache; the answers are byte for byte the ones the routes give (tested).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from mailer.errors import InputError
from mailer.web.csrf import COOKIE
from mailer.web.deps import NO_STORE, Web
from mailer.web.page_cache import Rendered, etag_matches
from mailer.web.papers_routes import PapersQuery
from mailer.web.security import SECURITY_HEADERS

Headers = list[tuple[bytes, bytes]]

_SECURITY = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
_NO_STORE = [(k.lower().encode(), v.encode()) for k, v in NO_STORE.items()]
_HTML = b"text/html; charset=utf-8"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class FastPath:
    """ASGI middleware: the cached answers, straight from memory."""

    def __init__(self, app: ASGIApp, web: Web, static: dict[str, tuple[bytes, str]]) -> None:
        self.app = app
        self.web = web
        self.static = {
            f"/static/{name}": (body, media.encode()) for name, (body, media) in static.items()
        }
        self._routes: dict[str, Callable[[Scope], tuple[int, Headers, bytes] | None]] = {
            "/papers": lambda scope: self._page(scope, "html"),
            "/api/papers": lambda scope: self._page(scope, "json"),
            "/": self._blank_form,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        answer = None
        # HEAD too: the server sends the same headers and drops the body.
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            route = self._routes.get(scope["path"])
            if route is not None:
                answer = route(scope)
            elif scope["path"] in self.static:
                answer = self._static(scope["path"])
        if answer is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = answer
        headers += _SECURITY
        if status != 304:
            headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _page(self, scope: Scope, kind: str) -> tuple[int, Headers, bytes] | None:
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        try:
            query = PapersQuery.parse(params)
        except (InputError, UnicodeError):
            return None  # the route explains what is wrong
        rendered = self.web.page_cache.peek((kind, *query.key))
        if rendered is None:
            return None
        return _cached(rendered, scope)

    def _blank_form(self, scope: Scope) -> tuple[int, Headers, bytes] | None:
        if scope["query_string"]:
            return None  # ?profile=... is rendered by the route, with its preview
        cookies = cookie_parser(_header(scope, b"cookie") or "")
        form = self.web.blank_form
        token = form.token(cookies.get(COOKIE))
        headers = [(b"content-type", _HTML), *_NO_STORE, (b"set-cookie", form.cookie(token))]
        return 200, headers, form.body(token)

    def _static(self, path: str) -> tuple[int, Headers, bytes]:
        body, media = self.static[path]
        return 200, [(b"content-type", media), (b"cache-control", b"public, max-age=3600")], body


def _cached(rendered: Rendered, scope: Scope) -> tuple[int, Headers, bytes]:
    body, etag, encoding = rendered.encoded(_header(scope, b"accept-encoding"))
    headers = [(k.encode(), v.encode()) for k, v in rendered.headers(etag)]
    if rendered.status == 200 and etag_matches(_header(scope, b"if-none-match"), etag):
        return 304, headers, b""
    headers += [(k.encode(), v.encode()) for k, v in encoding]
    headers.append((b"content-type", rendered.media_type.encode()))
    return rendered.status, headers, body
