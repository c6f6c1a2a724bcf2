"""Helpers shared by the CLI modules: settings and logging, database access, argument parsing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer

from mailer import logs
from mailer.config import Settings, get_settings
from mailer.context import Defaults
from mailer.db.session import SessionFactory, make_engine, make_session_factory
from mailer.errors import ConfigError, InputError
from mailer.models import SubscriberStatus

# Exit codes (documented in the README): 0 ok, 1 operation failed, 2 bad usage or input,
# 3 configuration error.
EXIT_FAILED, EXIT_INPUT, EXIT_CONFIG = 1, 2, 3

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def setup_logging(settings: Settings) -> None:
    """Install the structured log handler the settings ask for; ConfigError for a bad level."""
    try:
        logs.configure(settings.log_level, settings.log_format, logs.secrets_of(settings))
    except ValueError:
        raise ConfigError(
            f"MAILER_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {settings.log_level!r}"
        ) from None


def load_settings() -> Settings:
    """The process settings, with logging configured from them."""
    settings = get_settings()
    setup_logging(settings)
    return settings


def reload_logging() -> None:
    """SIGHUP: re-read MAILER_LOG_LEVEL and MAILER_LOG_FORMAT (environment and .env)."""
    setup_logging(Settings())


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[SessionFactory]:
    """A session factory on the configured database, disposed of afterwards."""
    engine = make_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def open_for_writing(path: Path) -> TextIO:
    """``path`` opened to write text; InputError saying why it cannot be (a missing folder)."""
    try:
        return path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def defaults_of(settings: Settings) -> Defaults:
    """New subscribers' defaults from settings."""
    return Defaults(
        send_time=settings.default_send_time,
        timezone=settings.default_timezone,
        smtputf8=settings.smtputf8,
    )


def parse_day(value: str | None) -> date | None:
    """A ``--date YYYY-MM-DD`` value; InputError otherwise."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--date must be YYYY-MM-DD, not {value!r}") from None


def parse_instant(value: str | None) -> datetime | None:
    """An ``--at`` ISO time (UTC when it has no offset); InputError otherwise."""
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--at must be an ISO time like 2026-11-22T08:00+09:00, not {value!r}"
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def parse_status(value: str | None) -> SubscriberStatus | None:
    """A ``--status`` value; InputError listing the valid ones otherwise."""
    if value is None:
        return None
    try:
        return SubscriberStatus(value.strip().lower())
    except ValueError:
        names = ", ".join(s.value for s in SubscriberStatus)
        raise InputError(f"unknown status {value!r}; use one of {names}") from None
