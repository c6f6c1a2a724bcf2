"""CLI output: rich tables on a terminal, plain tab-separated text when piped, JSON on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def say(message: str) -> None:
    """A line of normal output on stdout."""
    print(message)


def info(message: str) -> None:
    """A line of side information on stderr (keeps stdout clean for pipes)."""
    print(message, file=sys.stderr)


def emit_json(data: Any) -> None:
    """JSON on stdout."""
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _plain_cell(cell: Any) -> str:
    """A cell on one line: tabs and line breaks (a multi-line profile) would split the row."""
    return "" if cell is None else " ".join(str(cell).replace("\t", " ").splitlines())


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table: boxed on a terminal, tab-separated lines when piped."""
    if not sys.stdout.isatty():
        print("\t".join(headers))
        for row in rows:
            print("\t".join(_plain_cell(cell) for cell in row))
        return
    # rich only here: every command imports this module, few of them draw a table.
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title)
    for header in headers:
        grid.add_column(header)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(highlight=False, soft_wrap=True).print(grid)
