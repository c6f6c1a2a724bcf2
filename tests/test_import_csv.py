"""CSV import against hostile files: bad rows by line, duplicates, encodings, 100k rows."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailer.context import Defaults
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.errors import InputError
from mailer.matching import parse_profile
from mailer.matching.stored import load_stored
from mailer.subscribers import manage as subscriptions
from mailer.subscribers.importer import MAX_ERRORS, decode, import_csv
from mailer.subscribers.textfile import CHUNK
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)


def _import(sf: SessionFactory, text: str | bytes, **kw: bool):  # type: ignore[no-untyped-def]
    data = text.encode("utf-8") if isinstance(text, str) else text
    return import_csv(
        sf, data, defaults=Defaults(), confirmed=kw.get("confirmed", False), now=NOW,
        dry_run=kw.get("dry_run", False),
    )  # fmt: skip


def _count(sf: SessionFactory) -> int:
    with sf() as session:
        return int(session.scalar(select(func.count()).select_from(SubscriberRow)) or 0)


def test_bad_rows_are_reported_by_line_and_good_rows_import(
    session_factory: SessionFactory,
) -> None:
    text = (
        "email,keywords,frequency,timezone,send_time\n"
        "alice@example.org,diffusion,daily,Europe/Berlin,07:30\n"
        "not-an-address,robots,,,\n"
        'bob@example.org,"""unbalanced",,,\n'
        "carol@example.org,robots,hourly,,\n"
        "dave@example.org,robots,,Mars/Base,\n"
        "erin@example.org,robots,,,25:99\n"
        "\n"
        'frank@example.org,"multi\nline, profile",weekly,,\n'
        "grace@example.org,,,,\n"
        "ALICE@example.org,other,,,\n"
    )
    report = _import(session_factory, text)
    assert [(e.line, e.message.split(":")[0][:20]) for e in report.errors][:0] == []
    assert [e.line for e in report.errors] == [3, 4, 5, 6, 7, 11, 12]
    messages = {e.line: e.message for e in report.errors}
    assert "not-an-address" in messages[3]
    assert "profile" in messages[4]
    assert "frequency" in messages[5]
    assert "time zone" in messages[6]
    assert "HH:MM" in messages[7]
    assert "duplicate of line 2" in messages[12]
    assert sorted(s.email for s in report.imported) == ["alice@example.org", "frank@example.org"]
    alice = subscriptions.get(session_factory, "alice@example.org")
    assert (alice.status.value, alice.timezone, alice.send_time) == (
        "pending", "Europe/Berlin", "07:30",
    )  # fmt: skip
    frank = subscriptions.get(session_factory, "frank@example.org")
    assert frank.frequency.value == "weekly" and "multi" in frank.profile


def test_excel_semicolon_bom_crlf_and_header_in_any_order(session_factory: SessionFactory) -> None:
    data = '\ufeffKeywords;E-Mail;Time Zone\r\n"a; b";alice@example.org;Asia/Tokyo\r\n'
    report = _import(session_factory, data.encode("utf-8"), confirmed=True)
    assert report.errors == []
    alice = subscriptions.get(session_factory, "alice@example.org")
    assert (alice.profile, alice.timezone, alice.status.value) == ("a; b", "Asia/Tokyo", "active")


def test_no_header_reads_the_documented_column_order(session_factory: SessionFactory) -> None:
    report = _import(session_factory, "alice@example.org,diffusion,weekly\n")
    assert report.errors == [] and report.warnings
    assert subscriptions.get(session_factory, "alice@example.org").frequency.value == "weekly"


def test_wrong_encodings_are_refused_whole() -> None:
    with pytest.raises(InputError, match="UTF-16"):
        decode("email,keywords\n".encode("utf-16"))
    latin = "email,keywords\nrené@example.org,café\n".encode("latin-1")
    with pytest.raises(InputError, match=r"not UTF-8 \(byte 0xe9 on line 2\)"):
        decode(latin)


def test_formula_cells_are_stored_as_text_and_missing_columns_refused(
    session_factory: SessionFactory,
) -> None:
    report = _import(
        session_factory,
        'email,keywords\n=cmd|"/c calc"!A1,x\nalice@example.org,"=1+1, robots"\n',
    )
    assert [e.line for e in report.errors] == [2]
    assert subscriptions.get(session_factory, "alice@example.org").profile == "=1+1, robots"
    with pytest.raises(InputError, match="no keywords column"):
        _import(session_factory, "email,name\nbob@example.org,Bob\n")


def test_existing_unsubscribed_and_erased_addresses_are_not_resurrected(
    session_factory: SessionFactory,
) -> None:
    _import(session_factory, "email,keywords\na@example.org,x\nb@example.org,x\nc@example.org,x\n")
    subscriptions.unsubscribe(session_factory, "b@example.org", NOW)
    subscriptions.remove(session_factory, "c@example.org", NOW)
    report = _import(
        session_factory,
        "email,keywords\na@example.org,y\nb@example.org,y\nc@example.org,y\nd@example.org,y\n",
    )
    messages = {e.line: e.message for e in report.errors}
    assert "already a subscriber" in messages[2]
    assert "unsubscribed" in messages[3]
    assert "erased" in messages[4]
    assert [s.email for s in report.imported] == ["d@example.org"]
    assert _count(session_factory) == 3  # a, b, d


def test_dry_run_stores_nothing(session_factory: SessionFactory) -> None:
    report = _import(session_factory, "email,keywords\na@example.org,x\n", dry_run=True)
    assert len(report.imported) == 1 and report.dry_run
    assert _count(session_factory) == 0


def test_100k_rows_import_in_batches(session_factory: SessionFactory, tmp_path: Path) -> None:
    lines = ["email,keywords,timezone"]
    lines += [f"user{i}@example.org,diffusion policy,Europe/Berlin" for i in range(100_000)]
    lines[50_001] = "broken,diffusion,UTC"
    started = time.perf_counter()
    report = _import(session_factory, "\n".join(lines) + "\n", confirmed=True)
    elapsed = time.perf_counter() - started
    assert [e.line for e in report.errors] == [50_002]
    assert _count(session_factory) == 99_999
    assert elapsed < 60, f"100k rows took {elapsed:.1f}s"


def test_cli_import_reports_and_exits_1_on_rejected_rows(cli: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,keywords\nalice@example.org,x\nnope,x\n", encoding="utf-8")
    dry = cli("subscribers", "import", str(path), "--dry-run")
    assert dry.code == 1
    assert "would import 1 of 2 rows" in dry.out and "line 3:" in dry.err
    assert json.loads(cli("subscribers", "list", "--json").out) == []
    done = cli("subscribers", "import", str(path), "--confirmed", "--json")
    report = json.loads(done.out)
    assert (report["imported"], report["errors"][0]["line"], report["status"]) == (1, 3, "active")
    good = tmp_path / "good.csv"
    good.write_text("email,keywords\nbob@example.org,x\n", encoding="utf-8")
    assert cli("subscribers", "import", str(good)).code == 0
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,keywords\nrené@example.org,café\n".encode("latin-1"))
    refused = cli("subscribers", "import", str(latin))
    assert refused.code == 2 and "UTF-8" in refused.err


def test_unbalanced_quote_and_oversized_cells(session_factory: SessionFactory) -> None:
    swallowed = _import(
        session_factory, 'email,keywords\na@example.org,"x\nb@example.org,y\nc@example.org,z\n'
    )
    assert [(e.line, "unbalanced quote" in e.message) for e in swallowed.errors] == [(2, True)]
    assert _count(session_factory) == 0
    huge = "email,keywords\na@example.org,x\nb@example.org," + "a" * 200_000 + "\n"
    with pytest.raises(InputError, match="line 3: unreadable CSV"):
        _import(session_factory, huge)
    assert _count(session_factory) == 0


def test_a_file_without_line_breaks_fails_at_the_first_record_limit(
    session_factory: SessionFactory,
) -> None:
    """/dev/zero or a 2 GB single line: refused after one record's worth, nothing stored."""

    class Endless(io.RawIOBase):
        """A stream that never ends and never breaks a line (like /dev/zero), counting reads."""

        read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            buffer[:] = b"\0" * len(buffer)
            self.read_bytes += len(buffer)
            return len(buffer)

    endless = Endless()
    with pytest.raises(InputError, match=r"line 1: unreadable CSV \(a record longer than 4,096"):
        import_csv(
            session_factory, io.BufferedReader(endless), defaults=Defaults(), confirmed=True,
            now=NOW, max_record=4096,
        )  # fmt: skip
    assert endless.read_bytes < 4096 + 2 * CHUNK  # it stopped reading at once
    assert _count(session_factory) == 0


def test_a_quoted_cell_running_over_many_lines_is_bounded_like_one_line(
    session_factory: SessionFactory,
) -> None:
    data = b'email,keywords\na@example.org,"x\n' + b"short line\n" * 2000
    with pytest.raises(InputError, match=r"line 2: unreadable CSV \(a record longer than 4,096"):
        import_csv(
            session_factory, io.BytesIO(data), defaults=Defaults(), confirmed=True, now=NOW,
            max_record=4096,
        )  # fmt: skip
    assert _count(session_factory) == 0


def test_a_file_of_mostly_bad_rows_is_refused_whole(session_factory: SessionFactory) -> None:
    data = b"email,keywords\na@example.org,x\n" + b"nope,x\n" * (MAX_ERRORS + 5)
    with pytest.raises(InputError, match="more than 10,000 rows are invalid"):
        _import(session_factory, data)
    assert _count(session_factory) == 0


def test_cli_import_of_dev_zero_fails_with_one_line(cli: Invoke) -> None:
    result = cli("subscribers", "import", "/dev/zero")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "error: line 1: unreadable CSV (a record longer than 65,536 bytes; is this a CSV file?"
        " MAILER_IMPORT_MAX_RECORD_BYTES sets the limit); nothing was imported"
    ]
    directory = cli("subscribers", "import", ".")
    assert directory.code == 2 and "cannot read ." in directory.err


def test_imported_profiles_are_stored_compiled(session_factory: SessionFactory) -> None:
    # Parsed once to validate them; kept, so the first planning run loads instead of parsing.
    text = 'email,keywords\nalice@example.org,"diffusion, -survey"\nbob@example.org,robots\n'
    _import(session_factory, text, confirmed=True)
    with session_factory() as session:
        rows = session.scalars(select(SubscriberRow).order_by(SubscriberRow.email)).all()
        stored = {row.email: load_stored(row.profile_compiled, row.profile) for row in rows}
    assert stored == {
        "alice@example.org": parse_profile("diffusion, -survey"),
        "bob@example.org": parse_profile("robots"),
    }
