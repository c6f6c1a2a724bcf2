"""The error tree. Every error a user can cause is a ``MailerError`` with a one-line message.

::

    MailerError
    ├── ConfigError            a setting is missing or wrong
    ├── InputError             bad user input (CLI argument, form field, CSV row)
    │   ├── InvalidEmail
    │   ├── ProfileError       an invalid keyword profile (carries position and reason)
    │   ├── NotFound           no such subscriber / digest
    │   └── TokenError         a link token that is tampered, for another purpose, or expired
    │       └── TokenExpired
    ├── SourceError            a source could not be fetched or parsed
    │   ├── SourceSpecError    an unknown or malformed source spec
    │   ├── FetchError         transport or HTTP failure
    │   └── PayloadError       the whole payload is unreadable
    └── DeliveryError          a message could not be handed over
        ├── TransientDeliveryError   4xx, timeout, dropped connection: retry later
        └── PermanentDeliveryError   5xx for the recipient: do not retry
"""

from __future__ import annotations


class MailerError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(MailerError):
    """A setting is missing or invalid."""


class InputError(MailerError):
    """Bad input from a user: the operation changed nothing."""


class InvalidEmail(InputError):
    """An address that is not a valid email address."""


class NotFound(InputError):
    """The named subscriber (or other record) does not exist."""


class TokenError(InputError):
    """A signed link token that does not verify (tampered, truncated, other purpose)."""


class TokenExpired(TokenError):
    """A signed link token that verified but is older than its purpose allows."""


class ProfileError(InputError):
    """An invalid keyword profile; ``position`` is the 0-based offset of the problem."""

    def __init__(self, reason: str, position: int | None = None) -> None:
        self.reason = reason
        self.position = position
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(f"invalid profile: {reason}{where}")


class SourceError(MailerError):
    """A source could not be fetched or parsed."""


class SourceSpecError(SourceError, InputError):
    """A source spec that names no known source kind or is malformed."""


class FetchError(SourceError):
    """The source could not be reached or answered with an HTTP error."""


class PayloadError(SourceError):
    """The source answered, but the payload as a whole cannot be read."""


class DeliveryError(MailerError):
    """A message could not be handed to the mail server."""

    def __init__(self, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class TransientDeliveryError(DeliveryError):
    """A temporary failure (4xx, timeout, disconnect): the message may be retried."""


class PermanentDeliveryError(DeliveryError):
    """A permanent refusal (5xx) for the recipient: retrying will not help."""
