"""Bounce and complaint reports as real mail servers write them, and a real Maildir to put them in.

The files in ``tests/data/bounces/`` are written after the formats of Postfix, Exim, qmail,
Gmail, Microsoft 365, Yahoo's feedback loop and RFC 3464 / 5965 / 3834; they name the
envelope sender ``{{RETURN_PATH}}``, the digest's Message-ID ``{{MESSAGE_ID}}`` and the
recipient ``{{RCPT}}`` where a real server writes them.
"""

from __future__ import annotations

import mailbox
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "bounces"
FIXTURES = sorted(path.name for path in DATA.glob("*.eml"))


def report(
    name: str,
    *,
    return_path: str = "digest@example.org",
    message_id: str = "<not-ours@example.org>",
    rcpt: str = "alice@example.net",
) -> bytes:
    """The report ``name`` about one message: who it went to, from which envelope sender."""
    text = (DATA / name).read_text(encoding="utf-8")
    for placeholder, value in (
        ("{{RETURN_PATH}}", return_path),
        ("{{MESSAGE_ID}}", message_id),
        ("{{RCPT}}", rcpt),
    ):
        text = text.replace(placeholder, value)
    return text.encode("utf-8")


def maildir(path: Path) -> mailbox.Maildir:
    """A real Maildir (new/, cur/, tmp/) at ``path``."""
    return mailbox.Maildir(path, create=True)


def deliver(box: mailbox.Maildir, data: bytes) -> str:
    """Deliver a message into ``new/`` as an MTA would; its key."""
    return str(box.add(data))


def states(path: Path) -> dict[str, list[str]]:
    """Which files are in new/ and cur/ (cur/ names end in their flags)."""
    return {sub: sorted(p.name for p in (path / sub).iterdir()) for sub in ("new", "cur")}
