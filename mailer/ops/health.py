"""``mailer check-health`` (is the database reachable and migrated to head? exit 0 or 1), and
what the public ``/healthz`` may say about sources."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError

from mailer.db.migrate import current_revision, head_revision
from mailer.db.session import make_engine, ping
from mailer.logs import MASK, url_password


@dataclass(frozen=True, slots=True)
class Check:
    """One health check's result."""

    name: str
    ok: bool
    detail: str


def check(database_url: str) -> list[Check]:
    """Run every check; a failure never raises, it is reported."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            ping(connection)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        password = url_password(database_url)
        if password:
            reason = reason.replace(password, MASK)
        engine.dispose()
        return [
            Check("database", False, f"unreachable: {type(exc).__name__}: {reason}"),
            Check("migrations", False, "not checked (no database)"),
        ]
    try:
        current, head = current_revision(engine), head_revision(database_url)
    finally:
        engine.dispose()
    at_head = current == head
    detail = f"at {current}" if at_head else f"at {current or 'empty'}, head is {head}"
    return [Check("database", True, "reachable"), Check("migrations", at_head, detail)]


def public_source_name(name: str) -> str:
    """A source's name fit for an unauthenticated page: a file source by its file name only,
    a feed URL without credentials or query (``rss:https://host/path``)."""
    kind, _, rest = name.partition(":")
    if kind == "file":
        return f"file:{rest.rsplit('/', 1)[-1]}"
    if kind == "rss":
        try:
            parts = urlsplit(rest)
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            return "rss"
        return f"rss:{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"
    return name


def source_status(last_error: str | None, last_success: datetime | None) -> str:
    """``error`` when the last fetch failed, ``ok`` after a success, ``pending`` before any."""
    if last_error is not None:
        return "error"
    return "ok" if last_success is not None else "pending"
