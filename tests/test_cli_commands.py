"""Every admin command through the real entry point (in-process): output, exit codes, effects."""

from __future__ import annotations

import csv
import io
import json
import mailbox
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from tests.helpers.cli import (
    Invoke,
    cli_fixture,  # noqa: F401  (the `cli` fixture)
)


def _add(cli: Invoke, email: str, *extra: str) -> None:
    result = cli("subscribers", "add", email, "--keywords", "diffusion", *extra)
    assert result.code == 0, result.err


def _listed(cli: Invoke, *args: str) -> list[dict[str, object]]:
    result = cli("subscribers", "list", "--json", *args)
    assert result.code == 0, result.err
    data: list[dict[str, object]] = json.loads(result.out)
    return data


def test_add_list_filter_and_search(cli: Invoke) -> None:
    _add(cli, "alice@example.org", "--confirmed")
    _add(cli, "bob@lab.example.net")
    assert [s["email"] for s in _listed(cli)] == ["alice@example.org", "bob@lab.example.net"]
    assert [s["email"] for s in _listed(cli, "--status", "pending")] == ["bob@lab.example.net"]
    assert [s["email"] for s in _listed(cli, "--search", "LAB.")] == ["bob@lab.example.net"]
    plain = cli("subscribers", "list")
    assert plain.out.splitlines()[0].split("\t")[:2] == ["email", "status"]
    assert "alice@example.org\tactive" in plain.out


def test_bad_arguments_are_one_line_errors_with_exit_2(cli: Invoke) -> None:
    _add(cli, "alice@example.org", "--confirmed")
    cases = [
        ("subscribers", "list", "--status", "happy"),
        ("subscribers", "add", "x@example.org", "--keywords", '"open'),
        ("subscribers", "add", "x@example.org"),
        ("subscribers", "set", "alice@example.org", "--timezone", "Mars/Base"),
        ("subscribers", "set", "alice@example.org"),
        ("subscribers", "show", "ghost@example.org"),
        ("subscribers", "export", "--format", "xml"),
        ("why", "alice@example.org", "--date", "yesterday"),
        ("subscribers", "import", "/nonexistent/file.csv"),
    ]
    for args in cases:
        result = cli(*args)
        assert result.code == 2, (args, result)
        assert len(result.err.strip().splitlines()) == 1, (args, result.err)
        assert result.err.startswith("error: "), (args, result.err)
        assert "Traceback" not in result.err


def test_set_pause_resume_unsubscribe(cli: Invoke) -> None:
    _add(cli, "alice@example.org", "--confirmed")
    result = cli(
        "subscribers", "set", "alice@example.org", "--keywords", "world model",
        "--frequency", "weekly", "--weekday", "fri", "--timezone", "Asia/Tokyo",
        "--send-time", "07:15",
    )  # fmt: skip
    assert result.code == 0, result.err
    (row,) = _listed(cli)
    fields = ("profile", "frequency", "weekday", "timezone", "send_time")
    assert [row[f] for f in fields] == ["world model", "weekly", 4, "Asia/Tokyo", "07:15"]
    assert cli("subscribers", "pause", "alice@example.org").code == 0
    assert _listed(cli)[0]["status"] == "paused"
    assert cli("subscribers", "resume", "alice@example.org").code == 0
    assert _listed(cli)[0]["status"] == "active"
    assert cli("subscribers", "unsubscribe", "alice@example.org").code == 0
    assert _listed(cli)[0]["status"] == "unsubscribed"
    refused = cli("subscribers", "resume", "alice@example.org")
    assert refused.code == 2 and "unsubscribed" in refused.err


def test_show_prints_settings_and_json(cli: Invoke) -> None:
    _add(cli, "alice@example.org", "--confirmed")
    shown = cli("subscribers", "show", "Alice@Example.org", "--json")
    assert shown.code == 0, shown.err
    data = json.loads(shown.out)
    assert (data["email"], data["status"], data["digests"]) == ("alice@example.org", "active", [])


def test_remove_asks_and_then_refuses_re_adding_without_reconsent(cli: Invoke) -> None:
    _add(cli, "alice@example.org", "--confirmed")
    declined = cli("subscribers", "remove", "alice@example.org", stdin="n\n")
    assert declined.code == 1
    assert len(_listed(cli)) == 1
    erased = cli("subscribers", "remove", "alice@example.org", stdin="y\n")
    assert erased.code == 0, erased.err
    assert _listed(cli) == []
    again = cli("subscribers", "add", "alice@example.org", "--keywords", "robots")
    assert again.code == 2 and "--reconsented" in again.err
    back = cli("subscribers", "add", "alice@example.org", "--keywords", "robots", "--reconsented")
    assert back.code == 0, back.err
    assert _listed(cli)[0]["status"] == "pending"


def test_export_csv_neutralises_formulas_and_round_trips(cli: Invoke, tmp_path: Path) -> None:
    for email, profile in [
        ("alice@example.org", '=HYPERLINK("http://evil"), diffusion'),
        ("bob@example.org", "-survey, robots"),
        ("carol@example.org", "+1 transformer"),
        ("dave@example.org", "@home robots"),
    ]:
        assert cli("subscribers", "add", email, "--keywords", profile, "--confirmed").code == 0
    exported = cli("subscribers", "export")
    assert exported.code == 0, exported.err
    rows = list(csv.DictReader(io.StringIO(exported.out)))
    assert [r["keywords"][:2] for r in rows] == ["'=", "'-", "'+", "'@"]
    assert all(not r[k].startswith(("=", "+", "-", "@")) for r in rows for k in r)
    # Import the export into a fresh database name space: the guard comes off again.
    path = tmp_path / "export.csv"
    path.write_text(exported.out, encoding="utf-8")
    for email in ("alice", "bob", "carol", "dave"):
        assert cli("subscribers", "remove", f"{email}@example.org", "--yes").code == 0
    imported = cli("subscribers", "import", str(path), "--json")
    report = json.loads(imported.out)
    assert report["imported"] == 0 and len(report["errors"]) == 4  # erased: not resurrected


def test_export_json_one_person(cli: Invoke) -> None:
    _add(cli, "alice@example.org", "--confirmed")
    _add(cli, "bob@example.org")
    result = cli("subscribers", "export", "--format", "json", "--email", "bob@example.org")
    assert result.code == 0, result.err
    (person,) = json.loads(result.out)
    assert person["email"] == "bob@example.org" and person["digests"] == []
    everyone = json.loads(cli("subscribers", "export", "--format", "json").out)
    assert [p["email"] for p in everyone] == ["alice@example.org", "bob@example.org"]


def test_stats_counts(cli: Invoke) -> None:
    _add(cli, "alice@example.org", "--confirmed")
    _add(cli, "bob@example.org")
    _add(cli, "carol@example.org")
    result = cli("stats", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["subscribers"] == {"active": 1, "pending": 2}
    assert data["digests"] == {}
    plain = cli("stats").out
    assert "subscriber status\tcount\nactive\t1\npending\t2\n" in plain


def test_check_health_ok_and_failing(cli: Invoke, tmp_path: Path) -> None:
    ok = cli("check-health", "--json")
    assert ok.code == 0, ok.out
    assert json.loads(ok.out)["migrations"]["ok"] is True
    empty = cli("check-health", env={"MAILER_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"})
    assert empty.code == 1
    assert "migrations: FAIL" in empty.out
    down = cli(
        "check-health",
        env={"MAILER_DATABASE_URL": "postgresql+psycopg://u:hunter2pw@127.0.0.1:1/x"},
    )
    assert down.code == 1
    assert "database: FAIL" in down.out and "hunter2pw" not in down.out + down.err


def test_db_current_and_upgrade(cli: Invoke) -> None:
    current = cli("db", "current")
    assert current.code == 0 and "up to date" in current.out
    assert cli("db", "upgrade").code == 0


def test_every_command_has_help(cli: Invoke) -> None:
    from tests.test_docs_cli import command_paths

    for path in command_paths():
        result = cli(*path, "--help")
        assert result.code == 0, (path, result.err)
        assert "Usage" in result.out


def _maildir(tmp_path: Path) -> list[EmailMessage]:
    box = mailbox.Maildir(tmp_path / "outbox", factory=None, create=False)
    parsed = [message_from_bytes(box.get_bytes(key), policy=default) for key in box.iterkeys()]
    return [m for m in parsed if isinstance(m, EmailMessage)]


def test_pending_additions_get_a_confirmation_email(cli: Invoke, tmp_path: Path) -> None:
    _add(cli, "alice@example.org")
    _add(cli, "quiet@example.org", "--no-email")
    _add(cli, "active@example.org", "--confirmed")
    people = tmp_path / "people.csv"
    people.write_text("email,keywords\nbob@example.org,x\ncarol@example.org,y\n", encoding="utf-8")
    assert cli("subscribers", "import", str(people)).code == 0
    messages = _maildir(tmp_path)
    assert sorted(str(m["To"]) for m in messages) == [
        "alice@example.org", "bob@example.org", "carol@example.org",
    ]  # fmt: skip
    body = messages[0].get_body(("plain",))
    assert body is not None and "/confirm/" in body.get_content()
    assert messages[0]["Auto-Submitted"] == "auto-generated"


def test_cli_import_leaves_heavy_modules_for_the_commands_that_use_them() -> None:
    """Every CLI process (and each spawned render child) imports the CLI: Alembic, rich, the
    learned models' numerical stacks and the web server must wait for a command that uses them."""
    import subprocess
    import sys

    probe = (
        "import sys, mailer.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(done.stdout.split())
    assert "sqlalchemy" in loaded  # the probe sees what the CLI imports
    heavy = {"alembic", "rich", "sklearn", "scipy", "torch", "fastapi", "uvicorn"}
    assert loaded & heavy == set()
