"""Abstract snippets and highlighting: the right window, spans honoured, nothing invented."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from mailer.models import Span
from mailer.rendering import SNIPPET_CHARS, Segment, segments, snippet
from mailer.rendering.snippets import _single_spaced, _tidy


def words(n: int, word: str = "filler") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def test_short_abstract_is_shown_whole_with_highlights() -> None:
    text = "We train a world model on video."
    out = snippet(text, [Span("abstract", 11, 22)])
    assert out == [Segment("We train a "), Segment("world model", True), Segment(" on video.")]


def test_long_abstract_is_cut_around_the_matched_words() -> None:
    text = words(100) + ". Our diffusion policy works. " + words(100, "tail")
    at = text.index("diffusion policy")
    out = snippet(text, [Span("abstract", at, at + 16)])
    joined = "".join(s.text for s in out)
    assert joined.startswith("… Our ")  # starts at the sentence holding the match
    assert joined.endswith(" …") and len(joined) <= SNIPPET_CHARS + 4
    assert [s.text for s in out if s.hit] == ["diffusion policy"]
    assert not re.search(r"\w…|…\w", joined)  # cut between words, not inside one


def test_window_prefers_the_densest_cluster_of_matches() -> None:
    text = words(10) + " robot " + words(200) + " robot robot robot " + words(200)
    spans = [Span("abstract", m.start(), m.end()) for m in re.finditer("robot", text)]
    out = snippet(text, spans)
    assert sum(1 for s in out if s.hit) == 3


def test_empty_overlapping_and_out_of_range_spans() -> None:
    text = "alpha beta gamma"
    spans = [
        Span("abstract", 3, 3),  # empty
        Span("abstract", 0, 5),
        Span("abstract", 2, 10),  # overlaps the previous one
        Span("abstract", 14, 99),  # runs past the end
        Span("title", 0, 16),  # another field
    ]
    assert snippet(text, spans) == [
        Segment("alpha beta", True),
        Segment(" gam"),
        Segment("ma", True),
    ]


def test_no_spans_gives_the_opening_of_the_abstract() -> None:
    text = words(300)
    joined = "".join(s.text for s in snippet(text, []))
    assert joined.startswith("filler0 filler1") and joined.endswith(" …")


def test_whitespace_in_abstracts_is_collapsed() -> None:
    assert segments("a\n  b\tc", [(2, 5)], 0, 7) == [
        Segment("a "),
        Segment("b", True),
        Segment(" c"),
    ]
    # a highlight of only whitespace is no highlight; no double spaces between runs
    assert segments("x  y  z", [(1, 3), (3, 6)], 0, 7) == [
        Segment("x "),
        Segment("y", True),
        Segment(" z"),
    ]


@given(
    text=st.text(alphabet=st.sampled_from("ab <&>\"' \n.é"), max_size=900),
    raw=st.lists(st.tuples(st.integers(-5, 950), st.integers(-5, 950)), max_size=12),
)
def test_snippet_never_invents_text_and_highlights_only_spans(
    text: str, raw: list[tuple[int, int]]
) -> None:
    spans = [Span("abstract", s, e) for s, e in raw]
    out = snippet(text, spans)
    body = "".join(s.text for s in out).removeprefix("… ").removesuffix(" …")
    assert body in " ".join(text.split()) or body.strip() in " ".join(text.split())
    assert len(body) <= SNIPPET_CHARS
    covered = {i for s, e in raw for i in range(max(0, s), min(len(text), e))}
    for seg in out:
        assert seg.text
        if seg.hit:
            assert seg.text.strip() and covered


def _tidy_reference(runs: list[tuple[str, bool]]) -> list[Segment]:
    """The piece-by-piece ``_tidy`` that ``snippets._tidy`` replaces: what it must equal."""
    out: list[Segment] = []
    for raw, hit in runs:
        text = re.sub(r"\s+", " ", raw)
        if out and out[-1].text.endswith(" "):
            text = text.lstrip(" ")
        core = text.strip(" ")
        pieces = [Segment(text[: text.find(core)] if core else text)]
        if core and hit:
            pieces += [Segment(core, hit=True), Segment(text[text.find(core) + len(core) :])]
        elif core:
            pieces = [Segment(text)]
        for piece in pieces:
            if not piece.text:
                continue
            if out and not out[-1].hit and not piece.hit:
                out[-1] = Segment(out[-1].text + piece.text)
            else:
                out.append(piece)
    return out


@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.sampled_from("ab \n\t\u00a0\u2003."), max_size=12), st.booleans()
        ),
        max_size=10,
    )
)
def test_tidy_equals_the_piece_by_piece_reference(runs: list[tuple[str, bool]]) -> None:
    assert _tidy(runs) == _tidy_reference(runs)


@given(
    st.text(alphabet=st.sampled_from("ab \n\t\u00a0\u2003\u3000."), max_size=40),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=5),
)
def test_segments_skip_collapsing_only_when_it_changes_nothing(
    text: str, pairs: list[tuple[int, int]]
) -> None:
    """``_single_spaced`` texts skip the substitution: the runs must come out the same."""
    spans = sorted({(min(a, b), max(a, b)) for a, b in pairs if a != b})
    disjoint = [s for i, s in enumerate(spans) if i == 0 or s[0] >= spans[i - 1][1]]
    runs: list[tuple[str, bool]] = []
    pos = 0
    for start, end in disjoint:
        start, end = min(start, len(text)), min(end, len(text))
        if start < pos or start >= end:
            continue
        runs += [(text[pos:start], False), (text[start:end], True)]
        pos = end
    runs.append((text[pos:], False))
    assert segments(text, disjoint, 0, len(text)) == _tidy_reference(runs)


def test_single_spaced_means_collapsing_changes_nothing() -> None:
    assert _single_spaced("a b. c")
    for text in ("a  b", "a\nb", "a\tb", "a\u00a0b", "a \u2003b", "a\u3000b"):
        assert not _single_spaced(text)
