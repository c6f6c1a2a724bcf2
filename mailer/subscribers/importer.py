"""CSV import of subscribers: a pure parser with per-line errors, then batched inserts."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO

from sqlalchemy.orm import Session

from mailer.addresses import MAX_EMAIL_LENGTH, normalise_email
from mailer.context import Defaults
from mailer.db import subscribers as repo
from mailer.db import suppressions as suppression_repo
from mailer.db.session import SessionFactory
from mailer.errors import InputError
from mailer.matching import parse_profile
from mailer.matching.stored import stored_form
from mailer.models import Subscriber, SubscriberStatus, SuppressionReason
from mailer.schedule import Cadence, cadence_of, first_due
from mailer.subscribers.manage import SubscriberInput, validate
from mailer.subscribers.textfile import BoundedLines

COLUMNS = ("email", "keywords", "frequency", "timezone", "send_time", "weekday")
REQUIRED = ("email", "keywords")
ALIASES = {
    "e_mail": "email", "mail": "email", "email_address": "email", "address": "email",
    "profile": "keywords", "interests": "keywords", "keyword": "keywords",
    "time_zone": "timezone", "tz": "timezone", "sendtime": "send_time", "time": "send_time",
    "day": "weekday",
}  # fmt: skip
MAX_RECORD_BYTES = 64 * 1024  # the default of MAILER_IMPORT_MAX_RECORD_BYTES
MAX_ERRORS = 10_000
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
    # Each valid profile's compiled form, by text: parsed once here to validate it, stored
    # with the subscriber so planning loads it instead of parsing it again.
    compiled: dict[str, str] = field(default_factory=dict)


def decode(data: bytes, name: str = "the file") -> str:
    """The file's text: UTF-8 with or without BOM; InputError naming the bad byte otherwise."""
    return "".join(BoundedLines(io.BytesIO(data), name, max_record=len(data) + 1))


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


def _layout(first: str, warnings: list[str]) -> tuple[str, list[str], bool]:
    """Delimiter, column names and whether the first line is a header."""
    first = first.rstrip("\r\n")
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


def records(lines: BoundedLines, warnings: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for every non-blank data row of a CSV file, streamed."""
    first = next(lines, "")
    delimiter, names, has_header = _layout(first, warnings)
    reader = csv.reader(itertools.chain([first], lines), dialect="excel", delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            lines.new_record()
            if (has_header and line == 1) or not any(cell.strip() for cell in cells):
                continue
            yield line, {name: cell for name, cell in zip(names, cells, strict=False) if name}
    except csv.Error as exc:
        raise InputError(f"line {start}: unreadable CSV ({exc}); nothing was imported") from None


# A quoted cell that runs over what looks like the next rows: an unbalanced quote upstream.
_SWALLOWED_ROW = re.compile(r"\n[^,;\t\n\"]+@[^,;\t\n\"]+[,;\t]")


# A plain ASCII dot-atom address: validated here, with its domain checked once per import.
_SIMPLE_ADDRESS = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([a-z0-9.-]+)"
)


def fast_normaliser(smtputf8: bool = False) -> Callable[[str], str]:
    """``normalise_email`` with a fast path for plain addresses (100k rows share few domains)."""

    @functools.lru_cache(maxsize=4096)
    def domain_ok(domain: str) -> bool:
        try:
            normalise_email(f"x@{domain}")
        except InputError:
            return False
        return True

    def normalise(raw: str) -> str:
        candidate = raw.strip().lower()
        found = _SIMPLE_ADDRESS.fullmatch(candidate)
        if (
            found is not None
            and len(candidate) <= MAX_EMAIL_LENGTH
            and found.start(1) <= 65  # local part at most 64 characters
            and domain_ok(found.group(1))
        ):
            return candidate
        # The full check, and its precise error message.
        return normalise_email(raw, smtputf8=smtputf8)

    return normalise


def parse(
    data: bytes | BinaryIO,
    defaults: Defaults,
    now: datetime,
    name: str = "the file",
    *,
    max_record: int = MAX_RECORD_BYTES,
) -> ImportReport:
    """Validate every row; valid ones become pending subscribers, the rest line-numbered errors.

    ``data`` is the file's bytes or a binary stream read in chunks; no record may be longer
    than ``max_record`` bytes, and a file with more than ``MAX_ERRORS`` bad rows is refused
    whole (it is not a subscriber list), so memory never grows with a hostile file's size.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    report = ImportReport()
    seen: dict[str, int] = {}
    normalise = fast_normaliser(defaults.smtputf8)
    check_profile = _compiling(report.compiled)
    for line, cells in records(BoundedLines(stream, name, max_record), report.warnings):
        report.rows += 1
        if len(report.errors) > MAX_ERRORS:
            raise InputError(
                f"more than {MAX_ERRORS:,} rows are invalid (the last on line {line - 1}): "
                "is this the right file? Nothing was imported"
            )
        if any(_SWALLOWED_ROW.search(cell) for cell in cells.values()):
            report.errors.append(
                RowError(line, "a quoted cell runs over the following lines (unbalanced quote?)")
            )
            continue
        try:
            subscriber = validate(
                _input(cells), defaults, now, normalise=normalise, check_profile=check_profile
            )
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


def _compiling(compiled: dict[str, str]) -> Callable[[str], object]:
    """A profile check that keeps each valid profile's stored form (parsed once per text)."""

    def check(text: str) -> object:
        if text not in compiled:
            compiled[text] = stored_form(text, parse_profile(text))  # ProfileError if invalid
        return None

    return check


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
                report.imported.append(subscriber)
        if dry_run:
            session.rollback()
        else:
            _insert(session, report, confirmed=confirmed, now=now)
    report.errors.sort(key=lambda error: error.line)
    return report


def _insert(session: Session, report: ImportReport, *, confirmed: bool, now: datetime) -> None:
    due = functools.lru_cache(maxsize=1024)(lambda cadence: first_due(cadence, now))
    compiled = report.compiled
    rows = (_values(s, confirmed, now, due, compiled.get(s.profile)) for s in report.imported)
    repo.bulk_insert(session, rows)


def import_csv(
    session_factory: SessionFactory,
    data: bytes | BinaryIO,
    *,
    defaults: Defaults,
    confirmed: bool,
    now: datetime,
    dry_run: bool = False,
    name: str = "the file",
    max_record: int = MAX_RECORD_BYTES,
) -> ImportReport:
    """Parse and store a CSV file of subscribers; see ``parse`` and ``store``."""
    report = parse(data, defaults, now, name, max_record=max_record)
    return store(session_factory, report, confirmed=confirmed, now=now, dry_run=dry_run)


def _refused(session: Session, emails: Sequence[str]) -> dict[str, str]:
    """Addresses that may not be imported, with why: present, suppressed, or erased."""
    refused = {
        email: (
            f"unsubscribed; {_COME_BACK}"
            if status == SubscriberStatus.UNSUBSCRIBED.value
            else f"is already a subscriber ({status})"
        )
        for email, status in repo.statuses(session, emails).items()
    }
    unknown = [email for email in emails if email not in refused]
    for email, reason in suppression_repo.reasons_for(session, unknown).items():
        refused[email] = (
            f"was erased at their request; {_COME_BACK}"
            if reason is SuppressionReason.ERASED
            else f"is on the suppression list ({reason.value}); it is never mailed again"
        )
    return refused


_COME_BACK = "only the person can bring it back (signup form, or `subscribers add --reconsented`)"


def _values(
    subscriber: Subscriber,
    confirmed: bool,
    now: datetime,
    due: Callable[[Cadence], datetime],
    compiled: str | None,
) -> dict[str, object]:
    return {
        "email": subscriber.email,
        "status": (SubscriberStatus.ACTIVE if confirmed else SubscriberStatus.PENDING).value,
        "profile": subscriber.profile,
        "profile_compiled": compiled,
        "frequency": subscriber.frequency.value,
        "send_time": subscriber.send_time,
        "timezone": subscriber.timezone,
        "weekday": subscriber.weekday,
        "next_due_at": due(cadence_of(subscriber)) if confirmed else None,
        "created_at": now,
        "confirmed_at": now if confirmed else None,
        "hard_bounces": 0,
        "soft_bounces": 0,
    }
