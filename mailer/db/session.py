"""Engine and session factory: one per process, built from a database URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from mailer.errors import ConfigError
from mailer.logs import masked

SessionFactory = sessionmaker[Session]


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"MAILER_DATABASE_URL is not a database URL: {masked(url)!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"no driver for {parsed.get_backend_name()}: install mailer[postgres]"
        ) from exc
    except ArgumentError as exc:  # an unknown dialect or driver, e.g. foo:// or postgresql+x://
        raise ConfigError(
            f"MAILER_DATABASE_URL names no database this can use ({parsed.drivername!r});"
            " use sqlite:///path.db or postgresql+psycopg://user@host/db"
        ) from exc


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_session_factory(engine: Engine) -> SessionFactory:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def ping(connection: Connection | Session) -> None:
    """Ask the database a trivial question; SQLAlchemyError when it cannot answer."""
    connection.execute(text("SELECT 1"))
