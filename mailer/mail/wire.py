"""Messages as bytes in SMTP wire form, and facts about such bytes.

``crlf_only`` is shared with the render processes and ``delivery.smtp`` (which send the
bytes); this module loads nothing of the rendering stack.
"""

from __future__ import annotations

from email.message import EmailMessage
from io import BytesIO

from mailer.mail._fast import SMTP_POLICY, SMTPUTF8_POLICY, WireGenerator, alternative_chunks


def crlf_only(data: bytes) -> bool:
    """Whether every line of ``data`` ends in CRLF: no bare CR, no bare LF."""
    without_crlf = data.replace(b"\r\n", b"")
    return b"\r" not in without_crlf and b"\n" not in without_crlf


def message_bytes(msg: EmailMessage, *, utf8: bool = False) -> bytes:
    """The message as sent over SMTP (CRLF line endings); ``utf8`` for SMTPUTF8 headers."""
    return wire_bytes(msg, utf8=utf8)[0]


def wire_bytes(msg: EmailMessage, *, utf8: bool = False) -> tuple[bytes, bool]:
    """``message_bytes``, and whether the bytes are known to pass ``crlf_only``.

    True for the shape written directly (see ``_fast.alternative_chunks``), which ends each line
    in CRLF as it writes it: the sender need not scan the whole message again for bare line
    ends. False means not known, not that there are any.
    """
    policy = SMTPUTF8_POLICY if utf8 else SMTP_POLICY
    direct = alternative_chunks(msg, policy)
    if direct is not None:
        chunks, bodies = direct
        others = (chunk for index, chunk in enumerate(chunks) if index not in bodies)
        if all(map(crlf_only, others)):
            return b"".join(chunks), True
    out = BytesIO()
    WireGenerator(out, mangle_from_=False, policy=policy).flatten(msg)
    return out.getvalue(), False
