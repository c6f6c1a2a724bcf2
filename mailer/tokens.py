"""Signed link tokens, each scoped to one purpose and one subscriber (itsdangerous HMAC)."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes

from mailer.errors import TokenError, TokenExpired


class Purpose(StrEnum):
    """What a token lets its bearer do; a token for one purpose never works for another."""

    CONFIRM = "confirm"
    PREFERENCES = "preferences"
    UNSUBSCRIBE = "unsubscribe"
    DIGEST = "digest"
    FEED = "feed"  # read the subscriber's personal Atom feed, nothing else
    FEEDBACK = "feedback"  # one vote by one subscriber on one paper
    RATE = "rate"  # the page listing one digest's papers with both vote buttons


MAX_ID = 2**63 - 1  # the largest BIGINT key

# Confirmation links expire; the links in every digest must keep working for years.
MAX_AGE_SECONDS: dict[Purpose, int | None] = {
    Purpose.CONFIRM: 48 * 3600,
    Purpose.PREFERENCES: None,
    Purpose.UNSUBSCRIBE: None,
    Purpose.DIGEST: None,
    Purpose.FEED: None,
    Purpose.FEEDBACK: None,
    Purpose.RATE: None,
}

_VOTE_WORDS = {"more": "m", "less": "l"}
_VOTE_LETTERS = {letter: word for word, letter in _VOTE_WORDS.items()}


@dataclass(frozen=True, slots=True)
class FeedbackClaim:
    """What a feedback token lets its bearer do: vote ``vote`` on one paper for one reader."""

    subscriber_id: int
    paper_id: int
    vote: str  # "more" or "less"


class _KeyedSigner:
    """``TimestampSigner.sign`` with its key derived once, not once per token.

    itsdangerous derives the HMAC key from the secret and salt on every signature, which is
    most of a short token's cost; a digest signs fifty feedback tokens. Same bytes out.
    """

    def __init__(self, signer: Signer) -> None:
        if not isinstance(signer, TimestampSigner):  # a URLSafeTimedSerializer's always is
            raise TypeError("a TimestampSigner is needed")
        self._signer = signer
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._sep = want_bytes(signer.sep)
        self._second = -1
        self._stamp = b""

    def sign(self, payload: bytes, at: int | None = None) -> bytes:
        """``payload.timestamp.signature``, as ``TimestampSigner.sign`` writes it.

        ``at``: the timestamp to sign with (seconds since the epoch) instead of now.
        """
        if at is not None:
            stamp = base64_encode(int_to_bytes(at))
        else:
            now = self._signer.get_timestamp()
            if now != self._second:
                self._second, self._stamp = now, base64_encode(int_to_bytes(now))
            stamp = self._stamp
        value = payload + self._sep + stamp
        mac = self._mac.copy()
        mac.update(value)
        return value + self._sep + base64_encode(mac.digest())


_FEEDBACK = re.compile(r"([1-9][0-9]{0,18})\.([1-9][0-9]{0,18})\.([ml])")


class Tokens:
    """Makes and checks tokens with one secret key."""

    def __init__(self, secret_key: str) -> None:
        self._serializers = {
            purpose: URLSafeTimedSerializer(secret_key, salt=f"mailer.{purpose.value}")
            for purpose in Purpose
        }
        # ``dumps`` builds a new signer for every token; every digest carries three tokens.
        self._signers = {
            purpose: _KeyedSigner(s.make_signer()) for purpose, s in self._serializers.items()
        }
        # Return-path tags have a key of their own, derived like itsdangerous derives one
        # per salt, so a tag can never pass for a link token or the other way round.
        tag_key = hashlib.sha256(b"mailer.return-path" + secret_key.encode("utf-8")).digest()
        self._tag_mac = hmac.new(tag_key, digestmod=hashlib.sha256)

    def make(self, purpose: Purpose, subject: int | str, *, at: int | None = None) -> str:
        """A token naming ``subject`` (a subscriber or digest id) for ``purpose``.

        ``at`` stamps it with that time instead of now: a digest's links are stamped with the
        time it was planned, so rendering it again (a retry, "view in browser") gives the same
        bytes. Only confirmation tokens expire, and those are always stamped now.

        The same token ``dumps`` makes, at a third of its cost for an id: an integer's JSON
        is its digits, and ``dumps`` keeps a zlib-compressed payload only when it is shorter,
        which at ten characters or fewer it never is (zlib alone adds six bytes).
        """
        if type(subject) is int and -(10**9) < subject < 10**10:
            payload = base64_encode(str(subject).encode("ascii"))
        else:
            payload = want_bytes(self._serializers[purpose].dump_payload(subject))
        if purpose is Purpose.CONFIRM:
            at = None
        return self._signers[purpose].sign(payload, at).decode("ascii")

    def feedback(
        self, subscriber_id: int, paper_id: int, vote: str, *, at: int | None = None
    ) -> str:
        """A feedback token: this subscriber votes ``vote`` ("more" or "less") on this paper.

        The subject is the string ``"<subscriber>.<paper>.<m|l>"``; its JSON is that string in
        quotes, encoded here directly (a digest signs two of these per listed paper).
        """
        subject = f"{subscriber_id}.{paper_id}.{_VOTE_WORDS[vote]}"
        payload = base64_encode(f'"{subject}"'.encode("ascii"))
        return self._signers[Purpose.FEEDBACK].sign(payload, at).decode("ascii")

    def read_feedback(self, token: str) -> FeedbackClaim:
        """The vote a feedback token carries; TokenError for anything else."""
        subject = self.read(Purpose.FEEDBACK, token)
        found = _FEEDBACK.fullmatch(subject) if isinstance(subject, str) else None
        if found is None:
            raise TokenError("this link is not valid")
        return FeedbackClaim(int(found[1]), int(found[2]), _VOTE_LETTERS[found[3]])

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
        # A validly signed id no row can have (a forged or test token) must not reach a query:
        # 10**30 overflows BIGINT and would answer 500 instead of "not valid".
        if not isinstance(value, int) or not 0 < value <= MAX_ID:
            raise TokenError("this link is not valid")
        return value

    def return_tag(self, digest_id: int) -> str:
        """A tag naming one digest, for its envelope sender: ``123-`` and an 80-bit HMAC.

        Lowercase hex, because mail systems may change the case of an address's local part
        (and base32 costs 4 us in pure Python, hex 0.2); about 3 us per message in all.
        """
        return f"{digest_id}-{self._tag_signature(str(digest_id))}"

    def read_return_tag(self, tag: str) -> int | None:
        """The digest id a tag names, or None when the tag was not made with this key."""
        number, _, signature = tag.lower().partition("-")
        if not number.isdigit() or len(number) > 19 or len(signature) != _TAG_CHARS:
            return None
        if not hmac.compare_digest(self._tag_signature(number), signature):
            return None
        return int(number)

    def _tag_signature(self, payload: str) -> str:
        mac = self._tag_mac.copy()
        mac.update(payload.encode("ascii"))
        return mac.digest()[:10].hex()


_TAG_CHARS = 20  # 10 bytes of HMAC-SHA256 in hex: forging one takes about 2**80 tries
