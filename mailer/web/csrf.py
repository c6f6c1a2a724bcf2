"""Signed double-submit CSRF tokens: the same signed value in a cookie and in a form field."""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, TimestampSigner

COOKIE = "mailer_csrf"
FIELD = "csrf_token"
MAX_AGE_SECONDS = 7 * 24 * 3600


class Csrf:
    """Issues and checks CSRF tokens; the signature stops a planted cookie from passing."""

    def __init__(self, secret_key: str) -> None:
        self._signer = TimestampSigner(secret_key, salt="mailer.csrf")

    def issue(self) -> str:
        """A fresh signed token."""
        return self._signer.sign(secrets.token_urlsafe(18)).decode("ascii")

    def valid(self, token: str | None) -> bool:
        """True when ``token`` carries our signature and is not too old."""
        if not token:
            return False
        try:
            self._signer.unsign(token, max_age=MAX_AGE_SECONDS)
        except (BadSignature, UnicodeError, ValueError):
            return False
        return True

    def current(self, cookie: str | None) -> str:
        """The token to put in a page: the visitor's own when valid (keeps tabs working)."""
        return cookie if cookie is not None and self.valid(cookie) else self.issue()

    def check(self, cookie: str | None, field: str | None) -> bool:
        """True when the cookie is ours and the form field carries the same value."""
        if not self.valid(cookie) or field is None or cookie is None:
            return False
        return hmac.compare_digest(cookie.encode(), field.encode("utf-8", "replace"))
