"""Facts about message bytes in SMTP wire form; pure, imports nothing of mailer.

Shared by ``message`` (which writes the bytes), ``render_pool`` and ``delivery.smtp`` (which
send them) without the SMTP side having to load the rendering stack.
"""

from __future__ import annotations


def crlf_only(data: bytes) -> bool:
    """Whether every line of ``data`` ends in CRLF: no bare CR, no bare LF."""
    without_crlf = data.replace(b"\r\n", b"")
    return b"\r" not in without_crlf and b"\n" not in without_crlf
