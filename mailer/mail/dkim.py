"""DKIM signing of finished messages (dkimpy): relaxed/relaxed, rsa-sha256."""

from __future__ import annotations

from email.message import EmailMessage

from mailer.errors import ConfigError
from mailer.mail.wire import message_bytes

DKIM_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
)


def sign_message(
    msg: EmailMessage, *, selector: str, domain: str, private_key: bytes, utf8: bool = False
) -> bytes:
    """The message bytes with a DKIM-Signature (relaxed/relaxed, rsa-sha256) prepended.

    Returns bytes rather than a message because re-serialising could refold the signed
    headers; the caller sends these exact bytes. Needs the ``dkimpy`` package.
    """
    try:
        import dkim
    except ImportError:
        raise ConfigError("DKIM signing needs the dkimpy package: pip install dkimpy") from None
    raw = message_bytes(msg, utf8=utf8)
    present = {name.lower().encode() for name in msg}
    headers = [h for h in DKIM_HEADERS if h in present]
    try:
        signature: bytes = dkim.sign(
            raw,
            selector.encode(),
            domain.encode(),
            private_key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=headers,
        )
    except dkim.DKIMException as exc:
        raise ConfigError(f"DKIM signing failed (check MAILER_DKIM_*): {exc}") from None
    return signature + raw
