"""CSV import of subscribers: a pure parser with per-line errors, then batched inserts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mailer.db import subscribers as repo
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.errors import InputError
from mailer.models import Subscriber, SubscriberStatus
from mailer.schedule import first_due
from mailer.subscriptions import Defaults, SubscriberInput, cadence_of, validate

COLUMNS = ("email", "keywords", "frequency", "timezone", "send_time", "weekday")
REQUIRED = ("email", "keywords")
ALIASES = {
    "e_mail": "email", "mail": "email", "email_address": "email", "address": "email",
    "profile": "keywords", "interests": "keywords", "keyword": "keywords",
    "time_zone": "timezone", "tz": "timezone", "sendtime": "send_time", "time": "send_time",
    "day": "weekday",
}  # fmt: skip
BATCH = 2000
# Characters that make a spreadsheet treat a cell as a formula (see the exporter).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one line of the file was not imported."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    """What an import did (or, with ``--dry-run``, would do)."""

    candidates: list[tuple[int, Subscriber]] = field(default_factory=list)
    imported: list[Subscriber] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: int = 0
    dry_run: bool = False


def decode(data: bytes, name: str = "the file") -> str:
    """The file's text: UTF-8 with or without BOM; InputError naming the bad byte otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{name} is UTF-16; save it as 'CSV UTF-8' and import again")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name} is not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
            "save it as 'CSV UTF-8' and import again"
        ) from None


def _column(name: str) -> str:
    key = "_".join(name.strip().lower().replace("-", "_").split())
    return ALIASES.get(key, key)


def _header(first: str) -> tuple[str, list[str]] | None:
    """The delimiter and column names when the first line is a header naming ``email``."""
    for delimiter in (",", ";", "\t"):
        cells = next(csv.reader([first], dialect="excel", delimiter=delimiter), [])
        names = [_column(cell) for cell in cells]
        if "email" in names and len(names) > 1:
            return delimiter, names
    return None


def _layout(text: str, warnings: list[str]) -> tuple[str, list[str], bool]:
    """Delimiter, column names and whether the first line is a header."""
    first = text.split("\n", 1)[0].rstrip("\r")
    found = _header(first)
    if found is None:
        delimiter = ";" if first.count(";") > first.count(",") and "@" in first else ","
        warnings.append("no header line: reading columns as " + ", ".join(COLUMNS[:5]))
        return delimiter, list(COLUMNS), False
    delimiter, names = found
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise InputError(f"the header has no {' or '.join(missing)} column")
    unknown = sorted({n for n in names if n and n not in COLUMNS})
    if unknown:
        warnings.append("ignored columns: " + ", ".join(unknown))
    return delimiter, names, True


def records(text: str, warnings: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for every non-blank data row of a CSV text."""
    delimiter, names, has_header = _layout(text, warnings)
    reader = csv.reader(io.StringIO(text, newline=""), dialect="excel", delimiter=delimiter)
    start = 1
    for cells in reader:
        line, start = start, reader.line_num + 1
        if has_header and line == 1:
            continue
        if not any(cell.strip() for cell in cells):
            continue
        yield line, {name: cell for name, cell in zip(names, cells, strict=False) if name}


def parse(data: bytes, defaults: Defaults, now: datetime, name: str = "the file") -> ImportReport:
    """Validate every row; valid ones become pending subscribers, the rest line-numbered errors."""
    report = ImportReport()
    seen: dict[str, int] = {}
    for line, cells in records(decode(data, name), report.warnings):
        report.rows += 1
        try:
            subscriber = validate(_input(cells), defaults, now)
        except InputError as exc:
            report.errors.append(RowError(line, str(exc)))
            continue
        if subscriber.email in seen:
            report.errors.append(
                RowError(
                    line, f"{subscriber.email} is a duplicate of line {seen[subscriber.email]}"
                )
            )
            continue
        seen[subscriber.email] = line
        report.candidates.append((line, subscriber))
    return report


def unneutralise(cell: str) -> str:
    """Undo the export's formula guard (``'-survey`` back to ``-survey``) so files round-trip."""
    stripped = cell.strip()
    if len(stripped) > 1 and stripped[0] == "'" and stripped[1] in FORMULA_STARTS:
        return stripped[1:]
    return stripped


def _input(cells: dict[str, str]) -> SubscriberInput:
    value = {name: unneutralise(cell) for name, cell in cells.items()}
    return SubscriberInput(
        email=value.get("email", ""),
        profile=value.get("keywords", ""),
        frequency=value.get("frequency") or "daily",
        send_time=value.get("send_time") or None,
        timezone=value.get("timezone") or None,
        weekday=value.get("weekday") or None,
    )


def store(
    session_factory: SessionFactory,
    report: ImportReport,
    *,
    confirmed: bool,
    now: datetime,
    dry_run: bool,
) -> ImportReport:
    """Insert the valid rows in batches in one transaction; known or erased addresses are errors."""
    report.dry_run = dry_run
    with session_factory.begin() as session:
        refused = _refused(session, [s.email for _, s in report.candidates])
        for line, subscriber in report.candidates:
            reason = refused.get(subscriber.email)
            if reason is not None:
                report.errors.append(RowError(line, f"{subscriber.email} {reason}"))
            else:
                report.imported.append(_activated(subscriber, now) if confirmed else subscriber)
        if dry_run:
            session.rollback()
            return _sorted(report)
        for start in range(0, len(report.imported), BATCH):
            batch = report.imported[start : start + BATCH]
            session.execute(insert(SubscriberRow), [_values(s) for s in batch])
    return _sorted(report)


def import_csv(
    session_factory: SessionFactory,
    data: bytes,
    *,
    defaults: Defaults,
    confirmed: bool,
    now: datetime,
    dry_run: bool = False,
    name: str = "the file",
) -> ImportReport:
    """Parse and store a CSV file of subscribers; see ``parse`` and ``store``."""
    report = parse(data, defaults, now, name)
    return store(session_factory, report, confirmed=confirmed, now=now, dry_run=dry_run)


def _sorted(report: ImportReport) -> ImportReport:
    report.errors.sort(key=lambda error: error.line)
    return report


def _refused(session: Session, emails: Sequence[str]) -> dict[str, str]:
    """Addresses that may not be imported, with why: already present, or erased."""
    refused: dict[str, str] = {}
    for start in range(0, len(emails), 500):
        chunk = emails[start : start + 500]
        for email, status in session.execute(
            select(SubscriberRow.email, SubscriberRow.status).where(SubscriberRow.email.in_(chunk))
        ):
            refused[email] = (
                f"unsubscribed; {_COME_BACK}"
                if status == SubscriberStatus.UNSUBSCRIBED.value
                else f"is already a subscriber ({status})"
            )
    hashes = {repo.email_hash(e): e for e in emails if e not in refused}
    for key in repo.suppressed_hashes(session, hashes):
        refused[hashes[key]] = f"was erased at their request; {_COME_BACK}"
    return refused


_COME_BACK = "only the person can bring it back (signup form, or `subscribers add --reconsented`)"


def _activated(subscriber: Subscriber, now: datetime) -> Subscriber:
    return replace(subscriber, status=SubscriberStatus.ACTIVE, confirmed_at=now)


def _values(subscriber: Subscriber) -> dict[str, object]:
    active = subscriber.status is SubscriberStatus.ACTIVE
    assert subscriber.created_at is not None
    return {
        "email": subscriber.email,
        "status": subscriber.status.value,
        "profile": subscriber.profile,
        "frequency": subscriber.frequency.value,
        "send_time": subscriber.send_time,
        "timezone": subscriber.timezone,
        "weekday": subscriber.weekday,
        "next_due_at": first_due(cadence_of(subscriber), subscriber.created_at) if active else None,
        "created_at": subscriber.created_at,
        "confirmed_at": subscriber.confirmed_at,
        "hard_bounces": 0,
        "soft_bounces": 0,
    }
