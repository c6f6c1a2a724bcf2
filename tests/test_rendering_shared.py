"""Paper parts rendered once and shared across digests read exactly as if rendered afresh.

``Renderer`` caches each part of a paper's block on what it depends on (the paper; its
highlighted ranges; the interests). A key that left something out would show one reader
another reader's highlights or reasons: every digest rendered by a warm renderer, after
many others, must equal the same digest rendered with every cache emptied.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.models import Digest, Match, Span
from mailer.rendering import PaperView, Renderer, Segment, _html, _view, snippet_frame
from tests.helpers.golden import sample_digest

DIGEST, LINKS = sample_digest()
PAPERS = tuple(m.paper for m in DIGEST.matches)
INTERESTS = ("diffusion policy", '"world model"', "robots", "*")

WARM = Renderer()
COLD = Renderer()


@st.composite
def matches(draw: st.DrawFn) -> Match:
    paper = draw(st.sampled_from(PAPERS))
    spans = []
    for _ in range(draw(st.integers(0, 4))):
        field = draw(st.sampled_from(("title", "abstract")))
        length = len(paper.title if field == "title" else paper.abstract)
        start = draw(st.integers(0, max(0, length - 1)))
        end = draw(st.integers(start, min(length, start + 30)))
        spans.append(Span(field, start, end))
    interests = tuple(draw(st.lists(st.sampled_from(INTERESTS), min_size=1, max_size=2)))
    resembles = draw(st.sampled_from((None, None, PAPERS[0].title)))
    score = draw(st.floats(0, 1))
    return Match(paper, score, interests, (), tuple(spans), resembles=resembles)


def _render(renderer: Renderer, digest: Digest) -> tuple[str, str]:
    rendered = renderer.digest(digest, LINKS, date_label="Sun 22 Nov 2026")
    return rendered.html, rendered.text


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(matches(), min_size=1, max_size=3), min_size=1, max_size=4))
def test_a_warm_renderer_renders_each_digest_as_a_cold_one_does(
    digests: list[list[Match]],
) -> None:
    for listed in digests:
        digest = dataclasses.replace(DIGEST, matches=tuple(listed), total_matched=len(listed))
        COLD.clear_caches()
        assert _render(WARM, digest) == _render(COLD, digest)


def test_readers_matched_differently_share_the_papers_parts() -> None:
    renderer = Renderer()
    paper = PAPERS[0]
    for word in ("Diffusion", "Policy", "Visuomotor", "Action"):
        start = paper.title.index(word)
        match = Match(paper, 1.0, ("robots",), (), (Span("title", start, start + len(word)),))
        renderer.digest(dataclasses.replace(DIGEST, matches=(match,)), LINKS, date_label="x")
    # Four different highlights, four blocks; the paper's own parts were rendered once.
    assert renderer._plain_parts.cache_info().misses == 1
    assert renderer._title_html.cache_info().misses == 4
    assert renderer._snippet.cache_info().misses == 1  # no highlight in the abstract: one snippet


@given(
    st.lists(
        st.builds(
            Segment, st.text(alphabet=st.sampled_from("ab <&>\"' .\u00e9\u2026")), st.booleans()
        ),
        max_size=6,
    )
)
def test_a_snippet_written_from_its_frame_equals_the_macros(snip: list[Segment]) -> None:
    assert WARM._snippet_frame is not None  # the shipped template has the plain shape
    macro = _html(WARM._html_paper.snippet(_view(snippet=tuple(snip))))
    assert WARM._snippet_html(snip) == macro


def test_a_snippet_macro_of_another_shape_has_no_frame() -> None:
    def counted(view: PaperView) -> str:  # writes its runs twice: not head + runs + tail
        runs = "".join(s.text for s in view.snippet)
        return f"<p>{runs}{runs}</p>"

    assert snippet_frame(counted) is None
    assert snippet_frame(lambda view: "<p>\x01\x02\x03</p>") is not None
