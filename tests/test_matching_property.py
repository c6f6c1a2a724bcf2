"""Property tests: the batch engine and the naive baseline agree on random profiles and papers."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.errors import ProfileError
from mailer.matching import PaperIndex, Profile, parse_profile
from mailer.matching.baseline import NaiveMatcher
from mailer.matching.index import _layers
from mailer.matching.postings import bit_list
from mailer.matching.text import _analyze_marked, analyze, is_plain
from mailer.models import Paper

WORDS = [
    "robot",
    "robots",
    "learning",
    "learned",
    "policy",
    "policies",
    "world",
    "model",
    "models",
    "diffusion",
    "self",
    "supervised",
    "Café",
    "cafe",
    "survey",
]
NAMES = ["Sergey Levine", "Sergey Levin", "José Núñez", "Ada Lovelace"]
CATEGORIES = ["cs.RO", "cs.LG", "stat.ML"]
SEPARATORS = [" ", "-", ", ", ". ", " $\\alpha$ ", " <i>x</i> "]

words = st.sampled_from(WORDS)
text = st.lists(st.tuples(words, st.sampled_from(SEPARATORS)), max_size=12).map(
    lambda parts: "".join(w + s for w, s in parts)
)
paper_fields = st.tuples(
    text,
    text,
    st.lists(st.sampled_from(NAMES), max_size=2),
    st.lists(st.sampled_from(CATEGORIES), max_size=2),
    st.none() | st.integers(0, 50),
)
papers = st.lists(paper_fields, max_size=12).map(
    lambda rows: [
        Paper(
            key=f"k{i:03d}",
            id=i,
            title=title,
            abstract=abstract,
            authors=tuple(authors),
            categories=tuple(cats),
            upvotes=up,
        )
        for i, (title, abstract, authors, cats, up) in enumerate(rows)
    ]
)

positive = st.one_of(
    words,
    words,
    st.tuples(words, words).map(lambda ws: f'"{ws[0]} {ws[1]}"'),
    st.tuples(words, words).map(lambda ws: f"{ws[0]}-{ws[1]}"),
    words.map(lambda w: f"title:{w}"),
    st.sampled_from(["author:levine", 'author:"Sergey Levine"', "author:nunez", "author:levin"]),
    st.sampled_from(["cat:cs.RO", "cat:cs", "cat:stat.ml"]),
)
negative = st.one_of(
    words.map(lambda w: f"-{w}"),
    st.tuples(words, words).map(lambda ws: f'-"{ws[0]} {ws[1]}"'),
)
interest = st.tuples(st.lists(positive, min_size=1, max_size=3), st.lists(negative, max_size=1))
profiles = st.one_of(
    # Up to 7 interests: layer counting (papers matching n of them) needs n >= 6 to be tested.
    st.lists(interest, min_size=1, max_size=7).map(
        lambda items: ", ".join(" ".join(pos + neg) for pos, neg in items)
    ),
    st.lists(negative, max_size=2).map(lambda neg: ", ".join(["*", *neg])),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers, profiles, st.sets(st.integers(0, 12), max_size=3))
def test_engine_agrees_with_baseline(
    batch: list[Paper], profile_text: str, exclude: set[int]
) -> None:
    """Same matches, same order, same scores, interests, terms and spans."""
    profile = parse_profile(profile_text)
    engine = PaperIndex(batch).match(profile, exclude=frozenset(exclude))
    total, naive = NaiveMatcher(batch).match(profile, frozenset(exclude))
    assert engine == naive
    assert total == len(engine)
    assert not any(m.paper.id in exclude for m in engine)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers, profiles, st.integers(1, 5))
def test_truncated_digest_is_a_prefix(batch: list[Paper], profile_text: str, limit: int) -> None:
    """The lazy top-``limit`` path returns exactly the head of the full ranking."""
    profile = parse_profile(profile_text)
    index = PaperIndex(batch)
    full = index.match(profile)
    for _ in range(2):  # the second round runs on warm caches
        digest = index.digest(profile, limit=limit)
        assert digest.total == len(full)
        assert list(digest.matches) == full[:limit]


@settings(max_examples=200, deadline=None)
@given(profiles)
def test_compiled_form_round_trips(profile_text: str) -> None:
    """Any valid profile survives to_json/from_json unchanged."""
    profile = parse_profile(profile_text)
    assert Profile.from_json(profile.to_json()) == profile


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_parser_never_crashes(profile_text: str) -> None:
    """Any text either parses or raises ProfileError (never another exception)."""
    try:
        profile = parse_profile(profile_text)
    except ProfileError as exc:
        assert exc.position is None or 0 <= exc.position <= len(profile_text)
    else:
        assert profile.interests


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2**12 - 1), min_size=2, max_size=12))
def test_layers_count_papers_exactly(sets: list[int]) -> None:
    """Each paper in two or more sets lands in exactly one layer, the one of its count."""
    counts = [sum(s >> p & 1 for s in sets) for p in range(12)]
    multi = sum(1 << p for p, n in enumerate(counts) if n >= 2)
    found = {p: n for n, layer in _layers(sets, multi) for p in bit_list(layer)}
    assert found == {p: n for p, n in enumerate(counts) if n >= 2}


# Profiles made of interests drawn from a small pool, so subscribers share interests and pairs
# of interests, as real ones do: the engine's cross-subscriber caches are hit, not just filled.
shared_profiles = st.lists(
    st.lists(
        st.sampled_from(["robot", "learning", '"world model"', "policy", "cat:cs"]),
        min_size=1,
        max_size=4,
    ),
    min_size=2,
    max_size=8,
).map(lambda chosen: [", ".join(interests) for interests in chosen])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers, shared_profiles, st.integers(1, 6), st.sets(st.integers(0, 12), max_size=2))
def test_stream_of_shared_interests_agrees_with_baseline(
    batch: list[Paper], texts: list[str], limit: int, exclude: set[int]
) -> None:
    """One index streaming many subscribers (compiled profiles, interned as the planner loads
    them, twice over) lists and explains exactly what the baseline does for each."""
    index, naive = PaperIndex(batch), NaiveMatcher(batch)
    for text in texts * 2:
        profile = Profile.from_json(parse_profile(text).to_json())
        for sent in (frozenset(), frozenset(exclude)):
            digest = index.digest(profile, sent, limit)
            total, expected = naive.match(profile, sent, limit)
            assert (digest.total, list(digest.matches)) == (total, expected)


# ASCII text with the characters that shape tokens: letters of both cases, digits, the
# underscore (not a word character here), punctuation, spaces and line breaks.
plain_texts = st.text(alphabet="aAbBeEiInNsStTzZ019_-'. ,;:\t\n()", max_size=80)


@settings(max_examples=300, deadline=None)
@given(plain_texts)
def test_plain_text_analysis_agrees_with_the_markup_aware_path(text: str) -> None:
    """The fast path for ASCII text without markup yields the words, stems and offsets the
    character-by-character path does."""
    assert is_plain(text)
    assert analyze(text) == _analyze_marked(text)
