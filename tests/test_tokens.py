"""Signed tokens: one purpose, one subject, tamper-evident, and confirm links expire."""

from __future__ import annotations

import pytest

from mailer.errors import TokenError, TokenExpired
from mailer.tokens import Purpose, Tokens


def test_round_trip_and_scoping() -> None:
    tokens = Tokens("k" * 32)
    token = tokens.make(Purpose.UNSUBSCRIBE, 42)
    assert tokens.read_id(Purpose.UNSUBSCRIBE, token) == 42
    with pytest.raises(TokenError):
        tokens.read_id(Purpose.PREFERENCES, token)
    with pytest.raises(TokenError):
        Tokens("other-key" * 4).read_id(Purpose.UNSUBSCRIBE, token)


def test_tampered_tokens_are_refused() -> None:
    tokens = Tokens("k" * 32)
    token = tokens.make(Purpose.DIGEST, 7)
    for bad in (token[:-2], token + "x", token.replace(".", "!"), "", "a.b.c"):
        with pytest.raises(TokenError):
            tokens.read_id(Purpose.DIGEST, bad)


def test_confirm_tokens_expire() -> None:
    tokens = Tokens("k" * 32)
    token = tokens.make(Purpose.CONFIRM, 1)
    assert tokens.read_id(Purpose.CONFIRM, token) == 1
    with pytest.raises(TokenExpired):
        tokens.read_id(Purpose.CONFIRM, token, max_age=-1)
