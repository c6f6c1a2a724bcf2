"""The text part's wrapping is textwrap's, without its cost: compared on arbitrary text."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailer.rendering.text import _textwrap_reference, wrap

# Words, spaces, every kind of whitespace str.split() knows, hyphens, long runs, non-ASCII.
ALPHABET = st.sampled_from([*"ab-é.", " ", "  ", "\t", "\n", "\xa0", "\u2003", "\x1c"])
TEXT = st.lists(st.one_of(ALPHABET, st.text("xyz", min_size=10, max_size=90)), max_size=40)


@settings(max_examples=400, deadline=None)
@given(
    TEXT.map("".join),
    st.sampled_from(["", "    ", "  "]),
    st.one_of(st.none(), st.sampled_from(["1.  ", "123. ", "x" * 80])),
    st.integers(1, 90),
)
@example("word " * 30, "    ", None, 72)
@example("a" * 100 + " b c", "    ", "12. ", 72)
@example("   ", "    ", "1.  ", 72)
def test_wrap_is_textwrap(text: str, indent: str, first: str | None, width: int) -> None:
    assert wrap(text, indent, first, width) == _textwrap_reference(text, indent, first, width)
