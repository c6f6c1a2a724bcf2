"""Run the real CLI entry point in-process (fast), capturing exit code, stdout and stderr."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailer.cli import main
from mailer.config import get_settings


@dataclass(frozen=True)
class Result:
    """What one CLI run did."""

    code: int
    out: str
    err: str


Invoke = Callable[..., Result]


def _drop_log_handler() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "mailer"]:
        root.removeHandler(handler)


@pytest.fixture(name="cli")
def cli_fixture(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Invoke]:
    """``cli("subscribers", "list")`` runs ``mailer subscribers list`` on the test database."""
    monkeypatch.chdir(tmp_path)  # .env and .mailer-secret are looked up in the working dir
    for name in [n for n in list(__import__("os").environ) if n.startswith("MAILER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MAILER_DATABASE_URL", db_url)

    def invoke(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> Result:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["mailer", *args])
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            _drop_log_handler()
            get_settings.cache_clear()
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield invoke
    get_settings.cache_clear()
