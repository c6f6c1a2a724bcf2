"""Plain-text helpers for the text part: wrapping at 72 columns, URLs, numbering (pure)."""

from __future__ import annotations

import textwrap

TEXT_WIDTH = 72


def wrap(text: str, indent: str = "", first: str | None = None, width: int = TEXT_WIDTH) -> str:
    """Wrap plain text at ``width`` columns; ``first`` prefixes the first line instead of indent."""
    return textwrap.fill(
        " ".join(text.split()),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def labelled_url(label: str, url: str, indent: str = "", width: int = TEXT_WIDTH) -> str:
    """``label url`` on one line when it fits, else the URL alone on the next line."""
    line = f"{indent}{label} {url}"
    if len(line) <= width:
        return line
    return f"{indent}{label}\n{url}"


def numbered(wrapped: str, number: int) -> str:
    """A paper's wrapped title (indented by 4) with its number in the margin: ``12. Title``."""
    prefix = f"{number}. "
    if len(prefix) <= 4:
        return prefix.ljust(4) + wrapped[4:]
    return wrap(wrapped, "    ", prefix)


def plural(count: int, word: str) -> str:
    """``1 paper`` / ``2 papers``."""
    return f"{count} {word}{'' if count == 1 else 's'}"
