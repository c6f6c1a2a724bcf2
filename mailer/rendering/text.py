"""Plain-text helpers for the text part: wrapping at 72 columns, URLs, numbering (pure)."""

from __future__ import annotations

import textwrap

TEXT_WIDTH = 72


def wrap(text: str, indent: str = "", first: str | None = None, width: int = TEXT_WIDTH) -> str:
    """Wrap plain text at ``width`` columns; ``first`` prefixes the first line instead of indent.

    Words are never broken, not even at hyphens; a word longer than a line gets a line of its
    own. This is ``textwrap.fill`` with those options (``_textwrap_reference``, which the tests
    compare it with); a digest wraps a few dozen paragraphs, and textwrap's general machinery
    (regular expressions, chunk lists) cost a seventh of rendering one.
    """
    words = text.split()  # every run of whitespace is one space, as textwrap would see it
    if not words:
        return ""
    lines: list[str] = []
    prefix = indent if first is None else first
    room = width - len(prefix)
    line = [words[0]]
    used = len(words[0])
    for word in words[1:]:
        if used + 1 + len(word) <= room:
            line.append(word)
            used += 1 + len(word)
            continue
        lines.append(prefix + " ".join(line))
        prefix, room = indent, width - len(indent)
        line, used = [word], len(word)
    lines.append(prefix + " ".join(line))
    return "\n".join(lines)


def _textwrap_reference(
    text: str, indent: str = "", first: str | None = None, width: int = TEXT_WIDTH
) -> str:
    """What ``wrap`` must equal: textwrap, which it replaces on the rendering path."""
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
