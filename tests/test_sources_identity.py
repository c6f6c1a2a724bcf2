"""Paper identity: arXiv ids without version, namespaced own ids, title hashes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.sources import Source, make_source, normalise_arxiv_id, paper_identity, title_key
from mailer.sources.identity import clean_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2508.01234v2", "2508.01234"),
        ("2508.01234", "2508.01234"),
        ("1501.0001v1", "1501.0001"),
        ("arXiv:2508.01234v3", "2508.01234"),
        ("https://arxiv.org/abs/2401.00001v3", "2401.00001"),
        ("http://arxiv.org/pdf/2401.00001v1.pdf", "2401.00001"),
        ("oai:arXiv.org:2508.01234v1", "2508.01234"),
        ("hep-th/9901001v1", "hep-th/9901001"),
        ("math.GT/0309136", "math.GT/0309136"),
        ("https://arxiv.org/abs/cond-mat/0102536v2", "cond-mat/0102536"),
        ("not an id", None),
        ("12345", None),
        ("https://example.org/paper/2508", None),
    ],
)
def test_normalise_arxiv_id(raw: str, expected: str | None) -> None:
    assert normalise_arxiv_id(raw) == expected


def test_identity_prefers_any_arxiv_id() -> None:
    assert paper_identity(own_id="x", url="https://arxiv.org/abs/2508.00001v4") == "2508.00001"
    assert paper_identity(arxiv_id="2508.00002v1", own_id="x") == "2508.00002"


def test_identity_falls_back_to_own_id_then_url_then_title() -> None:
    assert paper_identity(own_id="abc", namespace="rss") == "rss:abc"
    assert paper_identity(url="https://example.org/p/1") == "url:https://example.org/p/1"
    assert paper_identity(title="Hello, World!") == title_key("hello   world")
    with pytest.raises(ValueError, match="no id"):
        paper_identity(title="  ")


def test_long_own_ids_are_hashed_to_fit_the_key_column() -> None:
    key = paper_identity(own_id="x" * 400, namespace="rss")
    assert key.startswith("rss:sha1:")
    assert len(key) < 255


def test_title_key_ignores_case_punctuation_spacing_and_unicode_width() -> None:
    assert title_key("\uff24eep  Learning: a Survey") == title_key("deep learning — A SURVEY")
    assert title_key("Deep learning") != title_key("Deep learner")


def test_clean_text_decodes_entities_and_collapses_whitespace() -> None:
    assert clean_text("  A &amp; B\n\tand&nbsp;C  ") == "A & B and C"


@given(
    number=st.integers(min_value=1, max_value=99999),
    month=st.integers(min_value=1, max_value=12),
    version=st.integers(min_value=1, max_value=30),
)
def test_any_version_of_a_new_style_id_has_one_identity(
    number: int, month: int, version: int
) -> None:
    bare = f"25{month:02d}.{number:05d}"
    for spelling in (bare, f"{bare}v{version}", f"arXiv:{bare}v{version}"):
        assert normalise_arxiv_id(spelling) == bare
        assert paper_identity(url=f"https://arxiv.org/abs/{spelling}") == bare
    assert normalise_arxiv_id(normalise_arxiv_id(bare) or "") == bare


@given(st.text(min_size=1, max_size=80))
def test_title_key_is_stable_under_case_and_spacing(title: str) -> None:
    assert (
        title_key(title) == title_key(f"  {title.upper()}  ") or title.upper() != title.casefold()
    )
    assert title_key(title) == title_key(" ".join(title.split()))


def test_every_source_kind_satisfies_the_protocol() -> None:
    for spec in ("hf-daily", "file:x.json", "arxiv:cs.LG", "rss:https://example.org/f"):
        assert isinstance(make_source(spec), Source)
