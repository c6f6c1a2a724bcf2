"""Signed link tokens, each scoped to one purpose and one subscriber (itsdangerous HMAC)."""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, want_bytes

from mailer.errors import TokenError, TokenExpired


class Purpose(StrEnum):
    """What a token lets its bearer do; a token for one purpose never works for another."""

    CONFIRM = "confirm"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    DIGEST = "digest"
    FEED = "feed"  # read the subscriber's personal Atom feed, nothing else


# Confirmation links expire; the links in every digest must keep working for years.
MAX_AGE_SECONDS: dict[Purpose, int | None] = {
    Purpose.CONFIRM: 48 * 3600,
    Purpose.PREFERENCES: None,
    Purpose.UNSUBSCRIBE: None,
    Purpose.DIGEST: None,
    Purpose.FEED: None,
}


class Tokens:
    """Makes and checks tokens with one secret key."""

    def __init__(self, secret_key: str) -> None:
        self._serializers = {
            purpose: URLSafeTimedSerializer(secret_key, salt=f"mailer.{purpose.value}")
            for purpose in Purpose
        }
        # ``dumps`` builds a new signer for every token; every digest carries three tokens.
        self._signers = {purpose: s.make_signer() for purpose, s in self._serializers.items()}

    def make(self, purpose: Purpose, subject: int | str) -> str:
        """A token naming ``subject`` (a subscriber or digest id) for ``purpose``.

        The same token ``dumps`` makes, at a third of its cost for an id: an integer's JSON
        is its digits, and ``dumps`` keeps a zlib-compressed payload only when it is shorter,
        which at ten characters or fewer it never is (zlib alone adds six bytes).
        """
        if type(subject) is int and -(10**9) < subject < 10**10:
            payload = base64_encode(str(subject).encode("ascii"))
        else:
            payload = want_bytes(self._serializers[purpose].dump_payload(subject))
        return self._signers[purpose].sign(payload).decode("ascii")

    def read(self, purpose: Purpose, token: str, max_age: int | None = None) -> int | str:
        """The subject of a valid token; TokenError or TokenExpired otherwise.

        itsdangerous compares signatures in constant time.
        """
        limit = max_age if max_age is not None else MAX_AGE_SECONDS[purpose]
        try:
            value = self._serializers[purpose].loads(token, max_age=limit)
        except SignatureExpired as exc:
            raise TokenExpired("this link has expired") from exc
        except (BadSignature, UnicodeError, ValueError) as exc:
            raise TokenError("this link is not valid") from exc
        if not isinstance(value, int | str) or isinstance(value, bool):
            raise TokenError("this link is not valid")
        return value

    def read_id(self, purpose: Purpose, token: str, max_age: int | None = None) -> int:
        """Like ``read`` for tokens that name a numeric id."""
        value = self.read(purpose, token, max_age)
        if not isinstance(value, int):
            raise TokenError("this link is not valid")
        return value
