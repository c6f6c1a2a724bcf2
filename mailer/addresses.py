"""Email address validation and normalisation: one path for signup, CLI and import (no DNS).

email-validator checks the syntax (deliverability off: no network), RFC 5321's limits (64
octets before the @, 254 in all) and encodes an internationalised domain in IDNA, so the
stored form of ``user@bücher.example`` is ``user@xn--bcher-kva.example`` and its ``To:``
header is plain ASCII. A local part that is not ASCII needs SMTPUTF8 end to end, so it is only
accepted for a new subscriber when the operator says the SMTP server offers it
(``MAILER_SMTPUTF8``). An address refused for its characters (a NUL, a line break) is not
quoted back; callers must not log the message of a refused address.
"""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from mailer.errors import InvalidEmail

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_LENGTH = 64
_LINE_BREAKS = "\r\n\u2028\u2029\x85"


def normalise_email(raw: str, *, smtputf8: bool = True) -> str:
    """A valid address in its stored form (IDNA domain, lower-cased); InvalidEmail otherwise.

    ``smtputf8=False`` refuses a local part that is not ASCII, as a new subscriber's address
    must be when the mail server does not offer SMTPUTF8. Looking up a stored address leaves
    it True, so an address stored earlier can always be found.
    """
    candidate = raw.strip()
    _refuse_characters(candidate)
    if len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidEmail(f"email address is longer than {MAX_EMAIL_LENGTH} characters")
    try:
        result = validate_email(
            candidate, check_deliverability=False, allow_smtputf8=smtputf8, strict=True
        )
    except EmailNotValidError as exc:
        raise InvalidEmail(f"{candidate!r} is not a valid email address: {_reason(exc)}") from None
    return (result.ascii_email or result.normalized).lower()


def _refuse_characters(candidate: str) -> None:
    """Empty, line breaks, control characters and undecodable bytes, each named plainly."""
    if not candidate:
        raise InvalidEmail("email address is empty")
    if any(ch in _LINE_BREAKS for ch in candidate):
        raise InvalidEmail("email address contains a line break")
    if "\x00" in candidate:
        raise InvalidEmail("email address contains a NUL character")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in candidate):
        raise InvalidEmail("email address contains a control character")
    if "\ufffd" in candidate:
        raise InvalidEmail("email address contains bytes that are not valid UTF-8")


def _reason(exc: EmailNotValidError) -> str:
    text = str(exc)
    if "Internationalized characters before the @-sign" in text:
        return (
            "the part before the @ is not plain ASCII (letters, digits, . _ + -), and this"
            " service's mail server is not set up for such addresses (MAILER_SMTPUTF8)"
        )
    if "too long before the @-sign" in text:
        return f"the part before the @ is longer than {MAX_LOCAL_LENGTH} characters"
    # email-validator quotes offending characters, never the whole address.
    return text.rstrip(".")
