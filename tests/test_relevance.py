"""The learned ranking (pure): what votes do to a digest, and what they never do."""

from __future__ import annotations

from mailer.matching import PaperIndex, parse_profile
from mailer.models import Paper
from mailer.relevance import Example, TextSpace, Vote, learn, paper_text
from mailer.relevance.digest import learned_digest
from mailer.relevance.ranking import ALSO_CAP, ALSO_ROOM_CAP, also_room, personalise
from mailer.relevance.space import Representation
from mailer.relevance.tuning import Tuning

TOPICS = {
    "robot": "robot manipulation grasping demonstrations imitation gripper arm",
    "vision": "image segmentation pixels convolution detection camera scenes",
    "language": "language model tokens translation text corpus grammar",
    "rl": "reward exploration policy agent environment returns curiosity",
}


def papers() -> list[Paper]:
    """Forty papers, ten per topic; every tenth one says "learning" (the keyword)."""
    found = []
    for t, (topic, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        for i in range(10):
            chosen = " ".join(vocab[(i + k) % len(vocab)] for k in range(4))
            more = " ".join(vocab[(i + k + 3) % len(vocab)] for k in range(4))
            keyword = " learning" if i % 2 == 0 else ""
            found.append(
                Paper(
                    key=f"p:{topic}:{i}",
                    id=t * 10 + i + 1,
                    title=f"{topic} study {i}{keyword} of {vocab[(i + 1) % len(vocab)]}",
                    abstract=f"We study {chosen} and {vocab[i % len(vocab)]} in depth; our "
                    f"{topic} experiments cover {more}.",
                )
            )
    return found


def example(paper: Paper, vote: Vote) -> Example:
    return Example(vote, paper.title, paper_text(paper.title, paper.abstract), paper.id)


def setup() -> tuple[list[Paper], PaperIndex, TextSpace]:
    store = papers()
    space = TextSpace([paper_text(p.title, p.abstract) for p in store])
    return store, PaperIndex(store), space


def topic_of(paper: Paper) -> str:
    return paper.key.split(":")[1]


def test_liked_topics_rise_and_disliked_ones_sink_within_the_keyword_matches() -> None:
    store, index, space = setup()
    profile = parse_profile("learning")
    liked = [example(store[1], Vote.MORE), example(store[3], Vote.MORE)]  # robot
    disliked = [example(store[21], Vote.LESS)]  # language
    model = learn(space, liked + disliked)
    assert model is not None
    window = space.paper_vectors(index.papers)
    found = learned_digest(index, window, profile, model, limit=25)
    keyword = [m for m in found.matches if m.resembles is None]
    assert found.total == 20 and len(keyword) == 20  # every keyword match is still listed
    assert {topic_of(m.paper) for m in keyword[:5]} == {"robot"}
    assert topic_of(keyword[-1].paper) == "language"
    assert all(m.learned is not None for m in found.matches)
    more, less = model.top_terms(space)
    assert {"robot", "manipulation"} & set(more) and "language" in less


def test_also_like_suggests_close_missed_papers_named_by_the_liked_one_and_is_capped() -> None:
    store, index, space = setup()
    liked = [example(p, Vote.MORE) for p in store[:10:2]]  # robot papers the keyword matched
    model = learn(space, liked)
    assert model is not None
    found = learned_digest(
        index, space.paper_vectors(index.papers), parse_profile("learning"), model, limit=25
    )
    also = [m for m in found.matches if m.resembles is not None]
    assert 0 < len(also) <= ALSO_CAP
    assert {topic_of(m.paper) for m in also} == {"robot"}
    assert all(m.interests == () and m.resembles in {e.title for e in liked} for m in also)
    assert not {m.paper.id for m in also} & {e.paper_id for e in liked}


def test_also_like_fills_the_places_a_few_keyword_matches_leave_free_in_the_digest() -> None:
    store, index, space = setup()
    model = learn(space, [example(store[0], Vote.MORE), example(store[2], Vote.MORE)])
    assert model is not None
    window, profile = space.paper_vectors(index.papers), parse_profile("segmentation")
    total = learned_digest(index, window, profile, model, limit=25).total
    assert 0 < total < 25 - ALSO_CAP  # a hurried reader's word: a handful of matches
    fills = learned_digest(index, window, profile, model, limit=25).matches
    also = [m for m in fills if m.resembles is not None]
    assert ALSO_CAP < len(also) <= min(25 - total, ALSO_ROOM_CAP) and len(fills) <= 25
    assert {topic_of(m.paper) for m in also} == {"robot"}
    # The first version's cap: five at most, however much room the digest had.
    capped = learned_digest(
        index, window, profile, model, limit=25, tuning=Tuning(also_fills=False)
    ).matches
    assert sum(m.resembles is not None for m in capped) == ALSO_CAP
    # A digest the keyword matches fill still gets the section, at its cap.
    many = learned_digest(index, window, parse_profile("learning"), model, limit=10).matches
    assert sum(m.resembles is not None for m in many) == ALSO_CAP


def test_the_also_like_room_is_the_cap_or_the_digests_free_places_and_zero_stays_off() -> None:
    assert also_room(5, 25, 18) == 7 and also_room(5, 25, 20) == 5 and also_room(5, 25, 80) == 5
    assert also_room(5, 25, 3) == ALSO_ROOM_CAP == 10  # never more than ten suggestions
    assert also_room(5, 25, 3, Tuning(also_fills=False)) == 5
    assert also_room(0, 25, 3) == 0 and also_room(-1, 25, 3) == 0


def test_the_also_like_section_ranks_where_its_best_paper_would_and_sinks_only_below_it() -> None:
    store, index, space = setup()
    model = learn(space, [example(store[0], Vote.MORE)])  # a single vote
    assert model is not None
    window, profile = space.paper_vectors(index.papers), parse_profile("learning")
    found = learned_digest(index, window, profile, model, limit=25).matches
    suggested = [m.resembles is not None for m in found]
    first, last = suggested.index(True), len(found) - suggested[::-1].index(True)
    assert all(suggested[first:last])  # one section
    best = max(m.score for m in found[first:last])
    assert found[:first] and all(m.score >= best for m in found[:first])
    assert all(m.score < best for m in found[last:])
    # A match the keywords rank far above the rest stays above the section, however unlike
    # the vote it is; under the first version's rule (a fixed threshold) it sank.
    rows = [i for i, p in enumerate(index.papers) if topic_of(p) != "robot"][:6]
    keyword = [100.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    now = personalise(model, window, rows, keyword)
    then = personalise(model, window, rows, keyword, tuning=Tuning(sink_below=0.5))
    assert now.also and now.picks[0].index == rows[0]
    assert rows[0] in {p.index for p in then.sunk}
    # Nothing suggested, nothing sinks: the keyword matches in the learned order.
    alone = personalise(model, window, [0, 2, 4], [3.0, 2.0, 1.0], also_cap=0)
    assert alone.also == () and alone.sunk == () and len(alone.picks) == 3


def test_an_exclusion_always_wins_and_sent_or_voted_papers_are_never_suggested() -> None:
    store, index, space = setup()
    liked = [example(store[0], Vote.MORE), example(store[2], Vote.MORE)]
    model = learn(space, liked)
    assert model is not None
    window = space.paper_vectors(index.papers)
    sent = frozenset({store[1].id or 0})
    found = learned_digest(
        index, window, parse_profile("learning, -gripper"), model,
        exclude=sent, voted=frozenset({store[3].id or 0}), limit=25,
    )  # fmt: skip
    listed = {m.paper.id for m in found.matches}
    assert not any("gripper" in (m.paper.title + m.paper.abstract) for m in found.matches)
    assert store[1].id not in listed and store[3].id not in listed


def test_no_examples_no_model_and_a_cap_of_zero_suggests_nothing() -> None:
    store, index, space = setup()
    assert learn(space, []) is None
    assert learn(TextSpace(["123 456"]), [example(store[0], Vote.MORE)]) is None
    only_less = learn(space, [example(store[0], Vote.LESS)])
    assert only_less is not None and only_less.liked.shape[0] == 0
    found = learned_digest(
        index, space.paper_vectors(index.papers), parse_profile("learning"), only_less
    )
    assert all(m.resembles is None for m in found.matches)  # nothing liked: nothing suggested


def test_the_space_names_terms_by_the_words_they_came_from() -> None:
    space = TextSpace(["Representations of representation learning", "Other papers here"])
    assert "representations" in space.words or "representation" in space.words
    assert all(part.isalpha() for word in space.words for part in word.split())


def test_neighbouring_words_are_terms_named_by_the_words_and_the_title_counts_more() -> None:
    texts = ["Imitation learning for robots", "Learning imitation of robots", "Other things"]
    space = TextSpace(texts)
    assert "imitation learning" in space.words  # a pair of words, said as written
    assert "learning imitation" in space.words and "imitation" in space.words
    plain = Representation(title_repeat=1, bigrams=False)
    assert plain.text("A title", "An abstract.") == "A title. An abstract."
    assert TextSpace(texts, plain).words.count("imitation learning") == 0
    # The same word weighs more in a paper's title than in its abstract.
    space = TextSpace(["grasping robots", "study of arms", "other things"])
    in_title, in_abstract = space.vectors(
        [paper_text("grasping robots", "we study arms"), paper_text("arms", "grasping robots")]
    ).toarray()
    column = space.terms.index("grasp")
    assert in_title[column] > in_abstract[column]
