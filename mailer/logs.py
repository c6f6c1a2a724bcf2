"""Structured logging: key=value or JSON lines on stderr, secrets masked, SIGHUP reloads it."""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from mailer.config import Settings

LogFormat = Literal["text", "json"]
MASK = "***"
NOISY = ("alembic", "apscheduler", "httpx", "aiosmtplib", "uvicorn.access")
_HANDLER_NAME = "mailer"
# The user-info of a URL (``//user:token@``) and the values of query parameters named like
# credentials: masked in every log line, /healthz and CLI output, whoever configured them.
_URL_USERINFO = re.compile(r"(?<=//)(?:([^/?#@\s:]*):)?[^/?#@\s]+@")
_URL_SECRET_PARAM = re.compile(
    # The value ends at &, #, space, or a colon closing a sentence ("...?token=x: failed").
    r"(?<=[?&])([^=&#\s]*(?:token|key|secret|pass|auth|sig|session|cred)[^=&#\s]*)="
    r"(?:[^&#\s:]|:(?!\s|$))*",
    re.IGNORECASE,
)
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged too.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    data.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
    if record.exc_info:
        data["error"] = logging.Formatter().formatException(record.exc_info).splitlines()[-1]
    return data


def _quote(value: Any) -> str:
    text = str(value)
    if text and not any(ch in text for ch in ' "=\n\t'):
        return text
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """One ``ts=... level=... logger=... msg="..."`` line per record (logfmt)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one logfmt line."""
        return " ".join(f"{key}={_quote(value)}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        return json.dumps(_fields(record), default=str, ensure_ascii=False)


class SecretMask(logging.Filter):
    """Replaces known secret values anywhere in a record's text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another one is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        """``text`` with every secret and every URL's credentials replaced."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return masked(text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the message and its arguments before any formatter sees them."""
        record.msg = self.mask(record.getMessage())
        record.args = None
        if record.exc_info:
            # Tracebacks can quote a URL with a password: keep only the masked summary.
            record.msg += " | " + self.mask(
                logging.Formatter().formatException(record.exc_info).splitlines()[-1]
            )
            record.exc_info, record.exc_text = None, None
        return True


def masked(text: str) -> str:
    """``text`` with the credentials of every URL in it masked: ``https://user:***@host/``,
    ``https://***@host/`` (a bare token), and ``?token=***`` for query parameters named like a
    token, key, secret or password."""
    if "//" not in text:
        return text
    text = _URL_USERINFO.sub(_masked_userinfo, text)
    return _URL_SECRET_PARAM.sub(rf"\1={MASK}", text)


def _masked_userinfo(found: re.Match[str]) -> str:
    # ``user:password@`` keeps the user (it tells the operator which login); a lone
    # ``token@`` is the credential itself.
    user = found.group(1)
    return f"{user}:{MASK}@" if user is not None else f"{MASK}@"


def url_password(url: str) -> str | None:
    """The password inside a database URL, if it has one."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def secrets_of(settings: Settings) -> list[str | None]:
    """Every configured value that must never appear in a log line."""
    return [
        settings.smtp_password,
        settings.secret_key,
        settings.dkim_private_key,
        url_password(settings.database_url),
        settings.bounce_password,
        url_password(settings.bounce_mailbox or ""),
    ]


def configure(
    level: str, fmt: LogFormat, secrets: Iterable[str | None] = (), stream: IO[str] | None = None
) -> None:
    """(Re)install the one handler (stderr by default) with the chosen format, level and mask."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(SecretMask(s for s in secrets if s))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def install_sighup(reload: Callable[[], None]) -> None:
    """On SIGHUP, call ``reload`` (re-read the logging settings); other settings need a restart."""
    if not hasattr(signal, "SIGHUP"):
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        try:
            reload()
        except Exception as exc:  # a bad new value must not kill a running daemon
            logging.getLogger(__name__).error("SIGHUP: logging settings not reloaded: %s", exc)
            return
        logging.getLogger(__name__).info(
            "SIGHUP: logging settings reloaded; other settings apply after a restart"
        )

    signal.signal(signal.SIGHUP, handler)
