"""deploy/: the compose file parses and names real commands, the prestart script works, the
Dockerfile and systemd units follow the rules (slim, non-root, health check, graceful stop)."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mailer.ops import health
from tests.test_docs_cli import command_paths

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MAILER = Path(sys.executable).parent / "mailer"

_TO_JSON = "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"


def _yaml(path: Path) -> Any:
    """Parse YAML with PyYAML: in this interpreter, or a system Python that has it."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return yaml.safe_load(path.read_text())
    for python in ("python3", "/usr/bin/python3"):
        found = shutil.which(python)
        if found is None:
            continue
        done = subprocess.run(
            [found, "-c", _TO_JSON], input=path.read_text(), capture_output=True, text=True,
            check=False, timeout=30,
        )  # fmt: skip
        if done.returncode == 0:
            return json.loads(done.stdout)
    pytest.skip("no PyYAML available to parse compose.yaml")


def _is_command(args: list[str]) -> bool:
    """True when the arguments start with a real `mailer` command path."""
    words = [a for a in args if not a.startswith("-")]
    return any(tuple(words[: len(p)]) == p for p in command_paths() if p)


def test_compose_runs_postgres_web_two_workers_and_a_mail_catcher() -> None:
    services = _yaml(DEPLOY / "compose.yaml")["services"]
    assert services["db"]["image"].startswith("postgres:")
    assert services["web"]["command"][0] == "web"
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "mailpit" in services["mailpit"]["image"]
    for name in ("web", "worker"):
        service = services[name]
        assert _is_command(service["command"]), service["command"]
        assert service["environment"]["MAILER_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert service["environment"]["MAILER_SMTP_HOST"] == "mailpit"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["entrypoint"] == ["mailer-prestart"]


def test_dockerfile_is_slim_non_root_with_postgres_and_a_health_check() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in text
    assert "pip install '.[postgres]'" in text
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert 'CMD ["mailer", "check-health"]' in text
    assert "COPY deploy/prestart.sh /usr/local/bin/mailer-prestart" in text
    entry = [line for line in text.splitlines() if line.startswith("CMD [")][-1]
    assert _is_command(json.loads(entry[4:]))


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / name)
    return parser


@pytest.mark.parametrize(("unit", "command"), [
    ("mailer-web.service", "web"), ("mailer-worker@.service", "worker"),
])  # fmt: skip
def test_systemd_units(unit: str, command: str) -> None:
    service = _unit(unit)["Service"]
    args = service["ExecStart"].split()
    assert args[0] == "/opt/mailer/bin/mailer" and args[1] == command and _is_command(args[1:])
    assert service["KillSignal"] == "SIGTERM"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["User"] == "mailer" and service["NoNewPrivileges"] == "true"


def _prestart(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DEPLOY / "prestart.sh")], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(MAILER_DATABASE_URL=url, MAILER_BIN=str(MAILER), MAILER_PRESTART_DELAY="0.1")
    return env


def test_prestart_migrates_a_reachable_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    done = _prestart(_env(url))
    assert done.returncode == 0, done.stderr
    assert [c.ok for c in health.check(url)] == [True, True]


def test_prestart_gives_up_on_an_unreachable_database() -> None:
    env = _env("postgresql+psycopg://nobody:pw@127.0.0.1:9/none")
    env["MAILER_PRESTART_TRIES"] = "2"
    done = _prestart(env)
    assert done.returncode == 1
    assert "waiting for the database (1/2)" in done.stderr
    assert "not reachable after 2 attempts: error: database error" in done.stderr


def test_example_env_names_only_real_settings() -> None:
    from tests.test_docs_cli import _env_names

    names = set(_env_names())
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        key = line.lstrip("# ").split("=", 1)[0]
        if key.startswith("MAILER_") and "=" in line:
            assert key in names or key in ("MAILER_BIN",), key
