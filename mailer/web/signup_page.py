"""The signup page's HTML and CSRF cookie; the blank form is rendered once per process.

Every visitor of ``/`` gets the same empty form except for their CSRF token (in a hidden field
and a cookie), so the page is rendered once with a placeholder and the token is spliced in:
the page costs a signature, not a template render with four hundred time zones.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

from mailer.context import Defaults
from mailer.web.csrf import COOKIE, FIELD, MAX_AGE_SECONDS, Csrf
from mailer.web.forms import SignupForm
from mailer.web.pages import Pages, timezone_choices
from mailer.web.preview import PreviewResult

HONEYPOT = "website"
TITLE = "New papers for you, by email"
_SLOT = "csrf-token-slot-b9f2e1"  # letters, digits and '-': legal in HTML and in a cookie


def signup_html(pages: Pages, form: SignupForm, preview: PreviewResult | None, token: str) -> str:
    """The signup page for a form as typed, with its preview and the visitor's token."""
    return pages.html(
        "signup",
        title=TITLE,
        form=form,
        preview=preview,
        csrf_field=FIELD,
        csrf_token=token,
        honeypot=HONEYPOT,
        timezones=timezone_choices(),
    )


def set_csrf_cookie(response: Response, token: str, secure: bool) -> Response:
    """Give the visitor the CSRF cookie their form's hidden field must match."""
    response.set_cookie(
        COOKIE, token, max_age=MAX_AGE_SECONDS, httponly=True, samesite="strict",
        secure=secure, path="/",
    )  # fmt: skip
    return response


def _split(text: bytes) -> tuple[bytes, bytes]:
    before, slot, after = text.partition(_SLOT.encode())
    assert slot and _SLOT.encode() not in after, "the placeholder must occur exactly once"
    return before, after


class BlankForm:
    """The empty signup form and its cookie header, with the token left to splice in."""

    def __init__(self, pages: Pages, csrf: Csrf, defaults: Defaults, secure: bool) -> None:
        self._pages = pages
        self._csrf = csrf
        self._defaults = defaults
        self._secure = secure
        self._parts: tuple[bytes, bytes, bytes, bytes] | None = None

    def _ready(self) -> tuple[bytes, bytes, bytes, bytes]:
        if self._parts is None:
            form = SignupForm.from_form({}, self._defaults)
            body = signup_html(self._pages, form, None, _SLOT).encode()
            cookie = dict(set_csrf_cookie(Response(), _SLOT, self._secure).raw_headers)
            self._parts = (*_split(body), *_split(cookie[b"set-cookie"]))
        return self._parts

    def token(self, cookie: str | None) -> str:
        """The visitor's own token when their cookie holds a valid one, else a new one."""
        return self._csrf.current(cookie)

    def body(self, token: str) -> bytes:
        """The page, carrying ``token``."""
        before, after, _, _ = self._ready()
        return before + token.encode("ascii") + after

    def cookie(self, token: str) -> bytes:
        """The Set-Cookie header value for ``token``."""
        _, _, before, after = self._ready()
        return before + token.encode("ascii") + after

    def response(self, token: str, headers: dict[str, Any]) -> Response:
        """The page as a framework response."""
        response = Response(self.body(token), headers=headers, media_type="text/html")
        response.raw_headers.append((b"set-cookie", self.cookie(token)))
        return response
