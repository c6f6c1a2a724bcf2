"""The layout the README describes: packaging, top-level folders shipped, a wheel that works."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_is_listed_for_the_wheel() -> None:
    """Every folder that ships, code or data, so setuptools neither drops nor warns about it."""

    def folders(top: Path, name: str) -> set[str]:
        found = {top} | {d for d in top.rglob("*") if d.is_dir() and d.name != "__pycache__"}
        return {".".join((name, *d.relative_to(top).parts)) for d in found}

    on_disk = (
        folders(ROOT / "mailer", "mailer")
        | folders(ROOT / "templates", "mailer.templates")
        | folders(ROOT / "migrations", "mailer.migrations")
    )
    assert set(PYPROJECT["tool"]["setuptools"]["packages"]) == on_disk


def test_the_package_top_level_stays_small() -> None:
    modules = sorted(p.name for p in (ROOT / "mailer").glob("*.py"))
    assert len(modules) <= 12, modules


# Outside db/, SQLAlchemy may name a session, an engine or an error, never build a statement.
SQLALCHEMY_OUTSIDE_DB = {
    "sqlalchemy": {"Connection", "Engine"},
    "sqlalchemy.orm": {"Session"},
    "sqlalchemy.exc": {"DBAPIError", "IntegrityError", "SQLAlchemyError"},
}


def test_sql_is_built_only_in_db() -> None:
    offences = []
    for path in sorted((ROOT / "mailer").rglob("*.py")):
        if path.parent.name == "db" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [(alias.name, "*") for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for module, name in names:
                allowed = SQLALCHEMY_OUTSIDE_DB.get(module, set())
                if module.split(".")[0] == "sqlalchemy" and name not in allowed:
                    offences.append(f"{path.relative_to(ROOT)}: {module}.{name}")
    assert offences == []


def test_templates_and_migrations_sit_at_the_top() -> None:
    assert (ROOT / "templates" / "digest.html.j2").is_file()
    assert (ROOT / "migrations" / "env.py").is_file()
    assert not (ROOT / "mailer" / "templates").exists()
    assert not (ROOT / "mailer" / "migrations").exists()


# Renders a confirmation email from the shipped templates and says where they were found.
RENDER = """
from mailer.rendering import Renderer
from mailer.resources import shipped
print(Renderer().confirmation("https://x.example/c").text)
print("templates:", shipped("templates"))
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILER_", "PYTHON"))}
    env.update(MAILER_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}", **extra)
    return env


def test_an_installed_checkout_migrates_and_renders_from_any_directory(tmp_path: Path) -> None:
    env = _env(tmp_path)
    out = _run([sys.executable, "-m", "mailer", "db", "upgrade"], tmp_path, env)
    assert "database at revision" in out
    assert "https://x.example/c" in _run([sys.executable, "-c", RENDER], tmp_path, env)


@pytest.mark.timeout(600)
def test_a_built_wheel_in_a_fresh_venv_migrates_and_renders(tmp_path: Path) -> None:
    """The wheel carries templates/ and migrations/ inside the package.

    The fresh venv gets only the wheel; its dependencies come from this environment's
    site-packages through PYTHONPATH, which does not run .pth files, so the editable
    install of the checkout stays invisible there.
    """
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
         tmp_path, _env(tmp_path))  # fmt: skip
    (wheel,) = wheels.glob("mailer-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, _env(tmp_path))
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
         tmp_path, _env(tmp_path))  # fmt: skip
    env = _env(tmp_path, PYTHONPATH=sysconfig.get_paths()["purelib"])
    where = _run([python, "-c", "import mailer; print(mailer.__file__)"], tmp_path, env)
    assert str(venv) in where and str(ROOT) not in where
    assert "database at revision" in _run([python, "-m", "mailer", "db", "upgrade"], tmp_path, env)
    out = _run([python, "-c", RENDER], tmp_path, env)
    assert "https://x.example/c" in out and f"templates: {venv}" in out
