"""Which bounce mailbox ``MAILER_BOUNCE_MAILBOX`` names: a Maildir or an IMAP folder."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from mailer.config import Settings
from mailer.delivery.imap import ImapInbox
from mailer.delivery.inbound import Inbox, MaildirInbox
from mailer.errors import ConfigError


def open_inbox(settings: Settings) -> Inbox:
    """The bounce mailbox the settings name; ConfigError when none is set or it is unusable."""
    where = (settings.bounce_mailbox or "").strip()
    if not where:
        raise ConfigError("set MAILER_BOUNCE_MAILBOX to a Maildir path or an imaps:// URL")
    scheme = urlsplit(where).scheme.lower() if "://" in where else ""
    if scheme in ("imap", "imaps"):
        return ImapInbox.from_url(where, settings.bounce_password, settings.bounce_max_bytes)
    if scheme:
        raise ConfigError(
            f"MAILER_BOUNCE_MAILBOX: use a Maildir path or an imaps:// URL, not {scheme}://"
        )
    return MaildirInbox(Path(where).expanduser(), settings.bounce_max_bytes)
