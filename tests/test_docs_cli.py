"""The docs stay true: docs/cli.md matches the real --help, every setting is in the README."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from mailer.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "scripts/cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def command_paths() -> list[tuple[str, ...]]:
    """Every command path of the CLI, from the generator (shared with the CLI tests)."""
    paths: list[tuple[str, ...]] = _reference().command_paths()
    return paths


def test_cli_reference_is_current() -> None:
    current = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    assert current == _reference().render(), (
        "docs/cli.md is stale: run .venv/bin/python scripts/cli_reference.py"
    )


def test_cli_reference_covers_every_command() -> None:
    text = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    paths = command_paths()
    assert ("subscribers", "import") in paths and ("why",) in paths and ("check-health",) in paths
    for path in paths:
        assert f"## `{' '.join(('mailer', *path))}`" in text


def _env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.append(alias if isinstance(alias, str) else f"MAILER_{name.upper()}")
    return names


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(MAILER_[A-Z0-9_]+)`", section, flags=re.M))
    missing = [name for name in _env_names() if name not in documented]
    assert not missing, f"settings missing from the README configuration table: {missing}"
    unknown = documented - set(_env_names())
    assert not unknown, f"README documents settings that do not exist: {sorted(unknown)}"
