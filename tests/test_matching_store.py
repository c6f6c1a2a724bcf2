"""The whole-store index agrees with the batch matcher: same papers, same scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailer.db.catalog import PaperText, SearchDoc
from mailer.matching import PaperIndex, parse_profile
from mailer.matching.store import Order, StoreIndex
from mailer.models import Paper
from tests.test_matching_property import papers, profiles

DAY = date(2026, 11, 20)


def doc(paper: Paper, day: date = DAY) -> SearchDoc:
    assert paper.id is not None
    return SearchDoc(
        paper.id, day, paper.upvotes, paper.title, paper.abstract, paper.authors, paper.categories
    )


class Texts:
    """The texts a search may ask for, counting how many it asked for."""

    def __init__(self, batch: Sequence[Paper]) -> None:
        self.by_id = {p.id: PaperText(p.title, p.abstract, p.authors) for p in batch}
        self.asked = 0

    def __call__(self, ids: Sequence[int]) -> Mapping[int, PaperText]:
        self.asked += len(ids)
        return {i: self.by_id[i] for i in ids if i in self.by_id}


def index_of(batch: Sequence[Paper]) -> StoreIndex:
    index = StoreIndex()
    index.add(doc(p) for p in batch)
    return index


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers, profiles)
def test_store_search_matches_what_the_batch_matcher_matches(
    batch: list[Paper], profile_text: str
) -> None:
    profile = parse_profile(profile_text)
    expected = {m.paper.id for m in PaperIndex(batch).match(profile)}
    index = index_of(batch)
    found = index.search(profile, Texts(batch))
    assert set(found) == expected and len(found) == len(expected)
    assert set(index.search(profile, Texts(batch), Order.RELEVANCE)) == expected


phrase_free = st.sampled_from(
    ["robot", "learning policy", "title:model, diffusion", "author:levine, cat:cs", "*, -survey"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(papers, phrase_free)
def test_relevance_scores_equal_the_digest_scores_without_phrases(
    batch: list[Paper], profile_text: str
) -> None:
    """Over the same papers, words, names and categories score exactly as in the digest
    (phrases estimate their paper count from their words, so they may differ slightly)."""
    profile = parse_profile(profile_text)
    expected = {m.paper.id: m.score for m in PaperIndex(batch).match(profile)}
    scores = index_of(batch).relevance(profile, Texts(batch))
    assert scores.keys() == expected.keys()
    for paper_id, score in scores.items():
        assert abs(score - expected[paper_id]) < 1e-9


def test_newest_first_is_day_then_upvotes_then_id() -> None:
    batch = [
        Paper(key="a", id=1, title="robot arms", upvotes=5),
        Paper(key="b", id=2, title="robot legs", upvotes=1),
        Paper(key="c", id=3, title="robot eyes", upvotes=9),
        Paper(key="d", id=4, title="robot ears", upvotes=None),
    ]
    index = StoreIndex()
    index.add([doc(batch[0], date(2026, 11, 21)), doc(batch[1], date(2026, 11, 21))])
    index.add([doc(batch[2]), doc(batch[3], date(2026, 11, 21))])
    assert index.search(parse_profile("robot"), Texts(batch)) == [1, 2, 4, 3]


def test_a_changed_text_is_reindexed_and_the_old_text_forgotten() -> None:
    old = Paper(key="a", id=1, title="Robot learning", abstract="A world model.")
    new = Paper(key="a", id=1, title="Quantum chemistry", abstract="Orbitals.")
    index = index_of([old])
    index.add([doc(new)])
    texts = Texts([new])
    assert index.search(parse_profile("robot"), texts) == []
    assert index.search(parse_profile('"world model"'), texts) == []
    assert index.search(parse_profile("chemistry"), texts) == [1]
    assert index.live == 1 and index.dead_share == 0.5


def test_upvotes_update_in_place_without_a_new_slot() -> None:
    paper = Paper(key="a", id=1, title="Robot learning", upvotes=1)
    index = index_of([paper])
    index.add([SearchDoc(1, DAY, 40, paper.title, "", (), ())])
    assert index.dead_share == 0.0 and list(index.upvotes) == [40]


def test_only_phrases_and_several_token_names_load_text() -> None:
    batch = [
        Paper(key=f"k{i}", id=i, title=f"world model {i}", authors=("Sergey Levine",))
        for i in range(1, 6)
    ]
    index = index_of(batch)
    texts = Texts(batch)
    index.search(parse_profile("world, model, author:levine, cat:cs, -survey"), texts)
    assert texts.asked == 0
    assert index.search(parse_profile('"world model"'), texts) == [5, 4, 3, 2, 1]
    assert texts.asked == 5
    assert index.search(parse_profile('author:"levine sergey"'), texts) == [5, 4, 3, 2, 1]


def test_phrases_in_plain_text_match_as_the_batch_matcher_does() -> None:
    """Plain text is checked by a regular expression over known word forms: the same answers."""
    texts = [
        "A World-Model for robots.",
        "world_models everywhere",
        "world2 model is not it",
        "worldly modelling neither",
        "The world, modelled.",
        "A $\\mathcal{W}$ world model in maths",  # markup: checked by stems
        "Café world models",  # not ASCII: checked by stems
        "world\nmodel across a line break",
    ]
    batch = [Paper(key=f"k{i}", id=i + 1, title="t", abstract=t) for i, t in enumerate(texts)]
    profile = parse_profile('"world model"')
    expected = {m.paper.id for m in PaperIndex(batch).match(profile)}
    assert set(index_of(batch).search(profile, Texts(batch))) == expected
    assert expected == {1, 2, 4, 5, 6, 7, 8}  # "worldly" stems to "world"
