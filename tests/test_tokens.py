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


@pytest.mark.parametrize("subject", [0, 7, 42, 10**12, -3, "alice@example.org", "x" * 300])
def test_tokens_are_the_ones_itsdangerous_makes(
    subject: int | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: 1_790_000_000)
    tokens = Tokens("k" * 32)
    for purpose in Purpose:
        stock = URLSafeTimedSerializer("k" * 32, salt=f"mailer.{purpose.value}")
        token = tokens.make(purpose, subject)
        assert token == stock.dumps(subject)
        assert tokens.read(purpose, token) == subject


@pytest.mark.parametrize("subject", [7, "alice@example.org"])
def test_a_token_stamped_at_a_time_is_the_one_itsdangerous_makes_then(
    subject: int | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: 1_700_000_123)
    tokens = Tokens("k" * 32)
    stock = URLSafeTimedSerializer("k" * 32, salt="mailer.unsubscribe").dumps(subject)
    assert tokens.make(Purpose.UNSUBSCRIBE, subject, at=1_700_000_123) == stock
    # Stamped at a fixed time, a token is the same whenever it is made; unstamped, it is not.
    made = []
    for now in (1_800_000_000, 1_800_003_600):
        monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self, now=now: now)
        made.append(
            (
                tokens.make(Purpose.UNSUBSCRIBE, subject, at=5),
                tokens.feedback(3, 9, "less", at=5),
                tokens.feedback(3, 9, "less"),
            )
        )
    assert made[0][:2] == made[1][:2] and made[0][2] != made[1][2]
    assert tokens.read_feedback(made[0][1]).vote == "less"


def test_confirm_tokens_are_always_stamped_now() -> None:
    tokens = Tokens("k" * 32)
    long_ago = tokens.make(Purpose.CONFIRM, 1, at=0)  # would have expired in 1970
    assert tokens.read_id(Purpose.CONFIRM, long_ago) == 1
