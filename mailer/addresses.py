"""Email address validation and normalisation (pure, no DNS look-ups)."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from mailer.errors import InvalidEmail

MAX_EMAIL_LENGTH = 254


def normalise_email(raw: str) -> str:
    """A valid address in its stored form (lower-cased); InvalidEmail with a reason otherwise."""
    candidate = raw.strip()
    if not candidate:
        raise InvalidEmail("email address is empty")
    if any(ch in candidate for ch in "\r\n\0"):
        raise InvalidEmail("email address contains a line break")
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"email address is longer than {MAX_EMAIL_LENGTH} characters")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"{candidate!r} is not a valid email address: {exc}") from exc
    return result.normalized.lower()
