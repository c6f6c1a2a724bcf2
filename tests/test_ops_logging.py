"""Structured logs: text or JSON lines, one per fetch and failure, secrets never logged, SIGHUP."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from mailer import logs
from mailer.db.migrate import upgrade
from tests.helpers.smtp_server import SmtpServer

SECRET = "hunter2-Sm7p-pa55word"
KEY = "signing-key-that-must-not-leak-0123456789"
SAMPLE = Path(__file__).resolve().parent.parent / "mailer" / "data" / "sample_papers.jsonl"


@pytest.fixture
def root_logger() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "mailer"]:
            root.removeHandler(handler)


def test_text_format_is_key_value_and_masks_secrets(root_logger: io.StringIO) -> None:
    logs.configure("INFO", "text", [SECRET, None, ""], root_logger)
    log = logging.getLogger("mailer.test")
    log.info("login as %s with %s", "bob", SECRET)
    try:
        raise RuntimeError(f"connect to postgresql://u:{SECRET}@db/x failed")
    except RuntimeError:
        log.exception("database down")
    text = root_logger.getvalue()
    assert SECRET not in text
    lines = text.strip().splitlines()
    assert len(lines) == 2  # a traceback is folded into the line, not spread over many
    assert lines[0].startswith("ts=") and "level=info logger=mailer.test" in lines[0]
    assert 'msg="login as bob with ***"' in lines[0]
    assert "postgresql://u:***@db/x" in lines[1]


def test_json_format_one_object_per_line(root_logger: io.StringIO) -> None:
    logs.configure("WARNING", "json", [SECRET], root_logger)
    log = logging.getLogger("mailer.test")
    log.info("not shown at WARNING")
    log.warning("fetch failed source=%s", "hf-daily", extra={"source": "hf-daily"})
    (line,) = root_logger.getvalue().strip().splitlines()
    record = json.loads(line)
    assert (record["level"], record["msg"], record["source"]) == (
        "warning", "fetch failed source=hf-daily", "hf-daily",
    )  # fmt: skip


def _env(db_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(
        MAILER_DATABASE_URL=db_url,
        MAILER_SECRET_KEY=KEY,
        MAILER_SOURCES=f"file:{SAMPLE}",
        MAILER_OUTBOX_DIR=str(tmp_path / "outbox"),
    )
    env.update(extra)
    return env


def _mailer(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database: these tests are about processes, not about backends."""
    url = f"sqlite:///{tmp_path}/mailer.db"
    upgrade(url)
    return url


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_secrets_never_reach_the_log(sqlite_url: str, tmp_path: Path) -> None:
    with SmtpServer(users={"digest": "the-right-password"}) as smtp:
        env = _env(
            sqlite_url, tmp_path, MAILER_SMTP_HOST=smtp.host, MAILER_SMTP_PORT=str(smtp.port),
            MAILER_SMTP_SECURITY="none", MAILER_SMTP_USERNAME="digest",
            MAILER_SMTP_PASSWORD=SECRET, MAILER_LOG_LEVEL="DEBUG", MAILER_LOG_FORMAT="json",
        )  # fmt: skip
        added = _mailer(env, tmp_path, "subscribers", "add", "a@example.org", "--keywords",
                        "*", "--confirmed")  # fmt: skip
        assert added.returncode == 0, added.stderr
        fetched = _mailer(env, tmp_path, "fetch")
        sent = _mailer(env, tmp_path, "send", "--now")
    everything = "".join(r.stdout + r.stderr for r in (added, fetched, sent))
    assert SECRET not in everything and KEY not in everything
    records = [json.loads(line) for line in fetched.stderr.splitlines() if line.startswith("{")]
    assert any(r["msg"].startswith("fetched source=file:") for r in records), fetched.stderr
    assert "refused" in sent.stderr, sent.stderr  # the login failure path was exercised


def _read_until(stream: IO[str], needle: str) -> str:
    """The first line containing ``needle`` (the process's own time limit bounds the wait)."""
    for line in stream:
        if needle in line:
            return line
    raise AssertionError(f"the worker ended without logging {needle!r}")


def test_sighup_reloads_the_log_format(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAILER_LOG_FORMAT=text\n")
    # A missing file: the start-up fetch logs a failure once the daemon's loop is running.
    env = _env(
        sqlite_url, tmp_path, MAILER_FETCH_CRON="0 0 1 1 *",
        MAILER_SOURCES=f"file:{tmp_path}/missing.jsonl",
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "mailer", "worker"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None
        first = worker.stderr.readline()
        assert first.startswith("ts=") and "level=info" in first, first
        _read_until(worker.stderr, "fetch failed")
        (tmp_path / ".env").write_text("MAILER_LOG_FORMAT=json\n")
        worker.send_signal(signal.SIGHUP)
        reloaded = json.loads(_read_until(worker.stderr, "SIGHUP"))
        assert reloaded["level"] == "info" and "reloaded" in reloaded["msg"]
        assert worker.poll() is None, "SIGHUP must not stop the worker"
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        finally:
            if worker.poll() is None:
                worker.kill()
            if worker.stderr is not None:
                worker.stderr.close()
    assert worker.returncode == 0
