"""Subscriber export: CSV (spreadsheet-safe) or JSON, everyone or one person's full record."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any, TextIO

from sqlalchemy.orm import Session

from mailer.addresses import normalise_email
from mailer.db import digests as digest_repo
from mailer.db import feedback as feedback_repo
from mailer.db import subscribers as repo
from mailer.db.feedback import StoredExample
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.errors import NotFound
from mailer.subscribers.importer import FORMULA_STARTS

# The first columns match the import format, so an export can be imported elsewhere.
FIELDS = (
    "email", "keywords", "frequency", "timezone", "send_time", "weekday", "status",
    "created_at", "confirmed_at", "unsubscribed_at", "hard_bounces", "last_bounce_reply",
)  # fmt: skip


def neutralise(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula (= + - @ tab CR)."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def record(row: SubscriberRow) -> dict[str, Any]:
    """A subscriber row as an export record (the columns of ``FIELDS``)."""
    return {
        "email": row.email,
        "keywords": row.profile,
        "frequency": row.frequency,
        "timezone": row.timezone,
        "send_time": row.send_time,
        "weekday": row.weekday,
        "status": row.status,
        "created_at": _plain(row.created_at),
        "confirmed_at": _plain(row.confirmed_at),
        "unsubscribed_at": _plain(row.unsubscribed_at),
        "hard_bounces": row.hard_bounces,
        "last_bounce_reply": row.last_bounce_reply,
    }


def records(session: Session, email: str | None = None) -> Iterator[dict[str, Any]]:
    """Every subscriber's record in id order (streamed), or one address's."""
    wanted = _known(session, email) if email is not None else None
    for row in repo.iter_rows(session, wanted):
        yield record(row)


def _known(session: Session, email: str) -> str:
    normalised = normalise_email(email)
    if repo.get_row_by_email(session, normalised) is None:
        raise NotFound(f"no subscriber {normalised}")
    return normalised


def full_record(session: Session, email: str) -> dict[str, Any]:
    """Everything stored about one person (a GDPR access request): settings, every digest and
    every vote or seeded paper."""
    row = repo.get_row_by_email(session, _known(session, email))
    assert row is not None
    data = record(row)
    data["soft_bounces"] = row.soft_bounces
    data["last_bounce_at"] = _plain(row.last_bounce_at)
    data["confirmation_sent_at"] = _plain(row.confirmation_sent_at)
    digests = digest_repo.every_digest_of(session, row.id)
    data["digests"] = [_digest(session, digest) for digest in digests]
    data["votes"] = [_vote(example) for example in _examples(session, row.id)]
    return data


def _examples(session: Session, subscriber_id: int) -> list[StoredExample]:
    return feedback_repo.examples_of(session, [subscriber_id]).get(subscriber_id, [])


def _vote(example: StoredExample) -> dict[str, Any]:
    """A vote or seeded entry as the person gave it."""
    return {
        "vote": "more like this" if example.vote > 0 else "less like this",
        "paper": example.key,
        "title": example.title,
        "origin": example.origin,
        "at": _plain(example.at),
    }


def _digest(session: Session, row: DigestRow) -> dict[str, Any]:
    papers = digest_repo.listed_titles(session, row.id)
    return {
        "period": row.period,
        "status": row.status,
        "note": row.note,
        "message_id": row.message_id,
        "sent_at": _plain(row.sent_at),
        "attempts": row.attempts,
        "last_reply": row.last_reply,
        "papers": [
            {"title": title, "url": url, "matched": list(interests)}
            for title, url, interests in papers
        ],
    }


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write records as CSV (Excel dialect, header line, formulas neutralised); the row count."""
    writer = csv.writer(out, dialect="excel")
    writer.writerow(FIELDS)
    count = 0
    for row in rows:
        writer.writerow(
            neutralise(str(row[name])) if isinstance(row[name], str) else row[name]
            for name in FIELDS
        )
        count += 1
    return count


def write_json(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write records as a JSON array, streamed one record at a time; the row count."""
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n  " if count else "\n  ")
        out.write(json.dumps(row, ensure_ascii=False, default=str))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
