"""Profile -> expected matches over a small hand-made corpus: every syntax element and rule."""

from __future__ import annotations

import pytest

from mailer.matching import Interest, PaperIndex, Profile, parse_profile
from mailer.matching.baseline import NaiveMatcher
from mailer.matching.reasons import new_match, new_span
from mailer.matching.scoring import text_score, text_scores
from mailer.models import Match, Paper, Span

CORPUS = (
    Paper(
        key="p1",
        id=1,
        title="Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
        abstract="This paper introduces Diffusion Policy, a new way of generating robot behavior.",
        authors=("Cheng Chi", "Shuran Song"),
        categories=("cs.RO",),
        upvotes=50,
    ),
    Paper(
        key="p2",
        id=2,
        title="World Models for Self-Supervised Representation Learning",
        abstract="We study self supervised learning of world models from video.",
        authors=("Sergey Levine",),
        categories=("cs.LG",),
        upvotes=10,
    ),
    Paper(
        key="p3",
        id=3,
        title="A Survey of Large Language Models",
        abstract="This survey reviews language models and their emergent behavior.",
        authors=("Sergey Levin",),
        categories=("cs.CL",),
        upvotes=100,
    ),
    Paper(
        key="p4",
        id=4,
        title=r"$\pi2\text{vec}$: Policy Representations with Successor Features",
        abstract="We describe a method for representing black-box policies as feature vectors.",
        authors=("Gianluca Scarpellini",),
        categories=("cs.LG",),
        upvotes=5,
    ),
    Paper(
        key="p5",
        id=5,
        title="Café <i>Robótica</i> &amp; Manipulation",
        abstract="Dexterous manipulation with tactile sensing learned from demonstrations.",
        authors=("José Núñez",),
        categories=("cs.RO",),
    ),
    Paper(
        key="p6",
        id=6,
        title="Transformers are Sample-Efficient World Models",
        abstract="A position paper on model-based reinforcement learning: the world is modelled.",
        authors=("Vincent Micheli",),
        categories=("cs.LG", "stat.ML"),
        upvotes=20,
    ),
    Paper(
        key="p7",
        id=7,
        title="Learning to Walk",
        abstract="A quadruped robot learned to walk with a transformer policy in the world.",
        authors=("Ada Lovelace",),
        categories=("cs.RO",),
        upvotes=0,
    ),
)

INDEX = PaperIndex(CORPUS)
NAIVE = NaiveMatcher(CORPUS)

# profile -> the keys it must match (as a set: ranking is tested separately)
TABLE = [
    ("diffusion policy", {"p1"}),  # all words
    ("policy diffusion", {"p1"}),  # any order
    ("Diffusion   POLICY", {"p1"}),  # case and whitespace
    ("representations", {"p2", "p4"}),  # stems: representation(s)
    ("learned", {"p1", "p2", "p5", "p6", "p7"}),  # learned = learning
    ("self-supervised", {"p2"}),  # hyphen = space
    ('"self supervised"', {"p2"}),  # phrase across a hyphen in the title
    ('"world model"', {"p2", "p6"}),  # phrase on stems
    ('"model world"', set()),  # phrase order matters
    ("world model", {"p2", "p6"}),  # words: p7 has world but no model
    ('"model based"', {"p6"}),  # phrase across a hyphen in the abstract
    ("model-based", {"p6"}),  # a hyphenated word is a phrase
    ("model -survey", {"p2", "p6"}),  # exclusion
    ('model -"position paper"', {"p2", "p3"}),  # phrase exclusion
    ("model, -survey", {"p2", "p6"}),  # exclusions are global, even on their own
    ("walk, -robot", set()),  # the only walk paper mentions robot
    ("author:levine", {"p2"}),  # whole-token: not Levin
    ("author:levin", {"p3"}),
    ('author:"Sergey Levine"', {"p2"}),
    ('author:"levine, sergey"', {"p2"}),
    ("author:nunez", {"p5"}),  # accent folded
    ('author:"JOSÉ NÚÑEZ"', {"p5"}),
    ("author:levines", set()),  # never stemmed
    ("cat:cs.RO", {"p1", "p5", "p7"}),
    ("cat:CS.ro", {"p1", "p5", "p7"}),
    ("cat:stat.ML", {"p6"}),
    ("cat:stat", {"p6"}),  # a whole archive
    ("title:transformer", {"p6"}),  # p7 has it only in the abstract
    ('title:"world models"', {"p2", "p6"}),
    ("title:learning policy", {"p1", "p7"}),  # title: scopes only its own word
    ("pi2vec", {"p4"}),  # LaTeX in a title
    ("robotica", {"p5"}),  # HTML tag and accent
    ("CAFÉ", {"p5"}),
    ("manipulation", {"p5"}),  # entity &amp; does not glue words
    ("*", {"p1", "p2", "p3", "p4", "p5", "p6", "p7"}),
    ("*, -survey", {"p1", "p2", "p4", "p5", "p6", "p7"}),
    ("diffusion\nsurvey", {"p1", "p3"}),  # new lines separate interests
    ("author:levine, cat:cs.CL", {"p2", "p3"}),
    ("walk author:lovelace cat:cs.ro", {"p7"}),  # scopes combine with words
    ("“world model”", {"p2", "p6"}),  # curly quotes from phones
    ("paper: diffusion", {"p1"}),  # "paper:" is a word and a colon, not a scope
]


@pytest.mark.parametrize(("profile", "expected"), TABLE)
def test_profile_matches_expected_papers(profile: str, expected: set[str]) -> None:
    """The table: each profile matches exactly the expected papers, in engine and baseline."""
    parsed = parse_profile(profile)
    assert {m.paper.key for m in INDEX.match(parsed)} == expected
    assert [m.paper.key for m in INDEX.match(parsed)] == [
        m.paper.key for m in NAIVE.match(parsed)[1]
    ]


def keys(profile: str, exclude: frozenset[int] = frozenset()) -> list[str]:
    """Ranked keys of a profile's matches."""
    return [m.paper.key for m in INDEX.match(parse_profile(profile), exclude=exclude)]


def test_star_ranks_by_popularity_then_key() -> None:
    """`*` is the trending digest: upvotes first, missing upvotes count as 0, key breaks ties."""
    assert keys("*") == ["p3", "p1", "p6", "p2", "p4", "p5", "p7"]


def test_more_matched_interests_rank_higher() -> None:
    """A paper matching two interests beats papers matching one."""
    ranked = keys("diffusion, policy")
    assert ranked[0] == "p1"
    assert set(ranked) == {"p1", "p4", "p7"}


def test_title_hits_outrank_abstract_hits() -> None:
    """`world` in the title ranks above `world` only in the abstract."""
    assert keys("world")[-1] == "p7"
    assert keys("transformer") == ["p6", "p7"]


def test_already_sent_papers_are_excluded() -> None:
    """Papers whose id is in `exclude` never appear."""
    assert keys("cat:cs.RO", exclude=frozenset({1, 99})) == ["p5", "p7"]
    assert "p1" not in keys("*", exclude=frozenset({1}))


def test_match_reports_interests_terms_and_score() -> None:
    """Each match says which interests it matched (profile order) and the surface words."""
    matches = INDEX.match(parse_profile("Diffusion  policy, robot, survey"))
    first = matches[0]
    assert first.paper.key == "p1"
    assert first.interests == ("Diffusion policy", "robot")
    assert first.terms == ("Diffusion", "Policy", "robot")
    assert first.score > matches[1].score
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def spans_text(profile: str, key: str) -> list[tuple[str, str]]:
    """The (field, original text) of every highlight span of one paper."""
    match = next(m for m in INDEX.match(parse_profile(profile)) if m.paper.key == key)
    texts = {"title": match.paper.title, "abstract": match.paper.abstract}
    return [(s.field, texts[s.field][s.start : s.end]) for s in match.spans]


def test_spans_point_at_the_matched_words() -> None:
    """Spans index the original strings, sorted and non-overlapping."""
    assert spans_text("diffusion policy", "p1") == [
        ("title", "Diffusion"),
        ("title", "Policy"),
        ("title", "Policy"),
        ("title", "Diffusion"),
        ("abstract", "Diffusion"),
        ("abstract", "Policy"),
    ]
    assert spans_text('"model based"', "p6") == [("abstract", "model-based")]
    assert spans_text("self-supervised", "p2") == [
        ("title", "Self-Supervised"),
        ("abstract", "self supervised"),
    ]


def test_spans_survive_markup_and_accents() -> None:
    """LaTeX spans cover the whole math fragment; HTML and accents keep exact offsets."""
    assert spans_text("pi2vec", "p4") == [("title", r"$\pi2\text{vec}$")]
    assert spans_text("robotica cafe", "p5") == [("title", "Café"), ("title", "Robótica")]
    assert spans_text("author:levine", "p2") == []


def test_title_scope_highlights_only_the_title() -> None:
    """A title: term is not highlighted in the abstract."""
    assert spans_text('title:"world models"', "p2") == [("title", "World Models")]


def test_spans_never_overlap() -> None:
    """Overlapping phrase and word hits merge into one span."""
    assert spans_text('"world models", world', "p2") == [
        ("title", "World Models"),
        ("abstract", "world models"),
    ]


def test_empty_batch_matches_nothing() -> None:
    """An index over no papers is valid and matches nothing, even `*`."""
    assert PaperIndex([]).match(parse_profile("*")) == []


def test_match_many_counts_and_truncates() -> None:
    """match_many streams one result per subscriber: the total and the best `limit`."""
    subscribers = [
        (parse_profile("*"), frozenset({3})),
        (parse_profile("diffusion"), frozenset()),
    ]
    results = list(INDEX.match_many(subscribers, limit=2))
    assert [r.total for r in results] == [6, 1]
    assert [m.paper.key for m in results[0].matches] == ["p1", "p6"]
    assert results[1].matches[0].interests == ("diffusion",)


EDGE = (
    Paper(
        key="e1",
        id=101,
        title="Robot robot robot: a robot learning survey",
        abstract="Learning robot robot skills. Robot learning, then more robot learning.",
        upvotes=3,
    ),
    Paper(
        key="e2",
        id=102,
        title=r"Bounds for $a b c$ and $x$-$y$ models",
        abstract=r"The $a b$ model learns $b c$ policies; a b c again.",
    ),
)
EDGE_PROFILES = [
    '"robot robot"',  # a phrase overlapping its own next occurrence: counted twice, merged
    '"robot robot", "robot learning"',  # two interests' spans overlap and touch
    'robot, "robot robot", learning',
    '"a b", "b c", a',  # tokens of one math fragment share its offsets
    "a c, x y, model",
    '"x y", title:models',
]


@pytest.mark.parametrize("profile", EDGE_PROFILES)
def test_engine_explains_edge_cases_like_the_baseline(profile: str) -> None:
    """Self-overlapping phrases and tokens sharing offsets: same scores, words and spans."""
    parsed = parse_profile(profile)
    index = PaperIndex(EDGE)
    expected = NaiveMatcher(EDGE).match(parsed)[1]
    assert expected
    assert index.match(parsed) == expected
    assert index.match(parsed) == expected  # again, from the cached reasons


def test_quick_constructors_make_equal_objects() -> None:
    """The explainer's Match and Span makers build what the dataclass constructors build."""
    span = new_span("title", 1, 5)
    assert span == Span("title", 1, 5)
    assert hash(span) == hash(Span("title", 1, 5))
    paper = CORPUS[0]
    match = new_match(paper, 1.5, ("a",), ("b",), (span,))
    assert match == Match(paper, 1.5, ("a",), ("b",), (Span("title", 1, 5),))
    assert repr(match) == repr(Match(paper, 1.5, ("a",), ("b",), (span,)))


def test_text_scores_is_text_score_for_each_paper() -> None:
    """The engine's batched BM25F gives bit-identical floats to the per-paper formula."""
    norms_title, norms_abs = [0.7, 1.0, 1.3, 2.9], [1.1, 0.4, 1.0, 0.9]
    in_title, in_abstract = {0: 2, 2: 1}, {0: 1, 1: 5, 3: 7}
    found = text_scores(1.7, [0, 1, 2, 3], in_title, norms_title, in_abstract, norms_abs)
    assert found == {
        p: text_score(1.7, in_title.get(p, 0), norms_title[p], in_abstract.get(p, 0), norms_abs[p])
        for p in range(4)
    }


def test_explanations_survive_cache_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny cache budget clears every cache many times mid-stream, even mid-digest: the
    digests stay exactly the baseline's."""
    monkeypatch.setattr("mailer.matching.lookup.CACHE_ENTRIES", 30)
    index = PaperIndex(CORPUS + EDGE)
    naive = NaiveMatcher(CORPUS + EDGE)
    profiles = [parse_profile(p) for p, _ in TABLE] + [parse_profile(p) for p in EDGE_PROFILES]
    for profile in profiles * 2:
        assert list(index.digest(profile, limit=4).matches) == naive.match(profile, limit=4)[1]
    assert index.cache_clears > 10


def test_back_to_back_phrase_counts_every_occurrence() -> None:
    """A phrase repeated with nothing between ("a b a b") occurs twice: the engine scores it
    as the baseline does (hypothesis found the index counting one)."""
    batch = [
        Paper(key="b1", id=1, title="", abstract="learning robot learning robot"),
        Paper(key="b2", id=2, title="", abstract="learning robot, and a cat"),
    ]
    profile = parse_profile('"learning robot"')
    expected = NaiveMatcher(batch).match(profile)[1]
    assert [m.paper.key for m in expected] == ["b1", "b2"]
    assert PaperIndex(batch).match(profile) == expected


def test_cached_matches_name_each_subscribers_own_interest() -> None:
    """A paper's Match for one interest is cached and shared by subscribers with that
    interest; two interests with the same terms but written differently each keep their
    text, from cold and warm caches alike."""
    terms = parse_profile("diffusion").interests[0].terms
    upper = Profile((Interest("Diffusion", terms),))
    lower = Profile((Interest("diffusion", terms),))  # the very same terms object
    shared = Profile.from_json(parse_profile("diffusion, robot").to_json())
    index = PaperIndex(CORPUS)
    naive = NaiveMatcher(CORPUS)
    for profile in [upper, lower, shared, upper, lower, shared]:
        expected = naive.match(profile, limit=3)[1]
        assert expected
        assert list(index.digest(profile, limit=3).matches) == expected


def test_cached_several_interest_matches_name_each_subscribers_texts() -> None:
    """A paper listed for matching several interests is cached for every subscriber with
    those interests; interests with the same terms written differently keep their own text."""
    diffusion = parse_profile("diffusion").interests[0].terms
    policy = parse_profile("policy").interests[0].terms
    upper = Profile((Interest("Diffusion", diffusion), Interest("policy", policy)))
    lower = Profile((Interest("diffusion", diffusion), Interest("policy", policy)))
    index = PaperIndex(CORPUS)
    naive = NaiveMatcher(CORPUS)
    for profile in [upper, lower, upper, lower]:
        expected = naive.match(profile, limit=3)[1]
        assert len(expected[0].interests) == 2
        assert list(index.digest(profile, limit=3).matches) == expected
