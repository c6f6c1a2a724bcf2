"""The learned ranking inside the planner: voters' digests change, nobody else's does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailer.context import Defaults, PlanOptions
from mailer.db import digests as digest_repo
from mailer.db import papers as paper_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow, PaperRow
from mailer.models import Match, Paper
from mailer.pipeline.learning import Learner
from mailer.pipeline.plan import DigestPlanner
from mailer.relevance import Vote
from mailer.subscribers import feedback
from mailer.subscribers.manage import SubscriberInput, add

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TOPICS = {
    "robot": "robot manipulation grasping demonstrations imitation gripper arm",
    "vision": "image segmentation pixels convolution detection camera scenes",
    "language": "language model tokens translation text corpus grammar",
    "rl": "reward exploration policy agent environment returns curiosity",
}


def topic_papers(day: int) -> list[Paper]:
    """Ten papers per topic; the even ones say "learning" (the profile's keyword)."""
    found = []
    for topic, words in TOPICS.items():
        vocab = words.split()
        for i in range(10):
            chosen = " ".join(vocab[(i + k + day) % len(vocab)] for k in range(4))
            more = " ".join(vocab[(i + k + day + 3) % len(vocab)] for k in range(4))
            keyword = " learning" if i % 2 == 0 else ""
            found.append(
                Paper(
                    key=f"d{day}:{topic}:{i}",
                    title=f"{topic} study {day}.{i}{keyword} of {vocab[(i + 1) % len(vocab)]}",
                    abstract=f"We study {chosen} and {vocab[i % len(vocab)]} in depth; our "
                    f"{topic} experiments cover {more}.",
                    source="test",
                )
            )
    return found


def setup(sessions: SessionFactory, profile: str = "learning") -> tuple[int, int]:
    with sessions.begin() as session:
        paper_repo.upsert_papers(session, topic_papers(1), NOW - timedelta(hours=30))
    ids = []
    for email in ("voter@example.org", "control@example.org"):
        raw = SubscriberInput(email, profile, send_time="08:00", timezone="UTC")
        ids.append(add(sessions, raw, confirmed=True, defaults=Defaults(),
                       now=NOW - timedelta(hours=20)).id)  # fmt: skip
    with sessions.begin() as session:
        paper_repo.upsert_papers(session, topic_papers(2), NOW - timedelta(hours=2))
    return ids[0], ids[1]


def vote(sessions: SessionFactory, subscriber_id: int, key: str, choice: Vote) -> None:
    with sessions() as session:
        paper_id = session.scalars(select(PaperRow.id).where(PaperRow.key == key)).one()
    feedback.vote(sessions, subscriber_id, paper_id, choice, origin="email", now=NOW)


def likes_robots_not_language(sessions: SessionFactory, voter: int) -> None:
    """The votes most tests use: three robot papers liked, a language paper disliked."""
    for i in (0, 2, 4):
        vote(sessions, voter, f"d1:robot:{i}", Vote.MORE)
    vote(sessions, voter, "d1:language:0", Vote.LESS)


def planner(sessions: SessionFactory, learner: Learner | None) -> DigestPlanner:
    counter = iter(range(1_000_000))
    return DigestPlanner(
        sessions,
        new_message_id=lambda: f"<{next(counter)}@example.org>",
        options=PlanOptions(),
        learner=learner,
    )


def listed(sessions: SessionFactory, subscriber_id: int) -> list[Match]:
    """Every paper the subscriber's digests list, digest by digest, in rank order."""
    with sessions() as session:
        ids = session.scalars(
            select(DigestRow.id)
            .where(DigestRow.subscriber_id == subscriber_id)
            .order_by(DigestRow.id)
        ).all()
        loaded = digest_repo.load_digests(session, ids)
    return [match for digest_id in ids for match in loaded[digest_id].matches]


def test_a_voters_digest_is_ranked_by_the_votes_and_a_controls_is_untouched(
    session_factory: SessionFactory,
) -> None:
    voter, control = setup(session_factory)
    likes_robots_not_language(session_factory, voter)
    report = planner(session_factory, Learner()).run(now=NOW, force=True, dry_run=False)
    assert report.queued == 2
    mine = listed(session_factory, voter)
    keys = [row.paper.key for row in mine]
    assert all(row.learned is not None for row in mine)
    assert keys[0].startswith("d2:robot:")  # a liked topic first
    keyword = [k for k, row in zip(keys, mine, strict=True) if row.resembles is None]
    assert keyword[-1].startswith("d2:language:")  # the disliked topic sinks
    also = [(k, row) for k, row in zip(keys, mine, strict=True) if row.resembles is not None]
    assert 0 < len(also) <= 5 and all(k.startswith("d2:robot:") for k, _ in also)
    assert all(row.interests == () and "robot study 1." in (row.resembles or "") for _, row in also)
    theirs = listed(session_factory, control)
    assert all(row.learned is None and row.resembles is None for row in theirs)
    assert len(theirs) == 20  # every keyword match, nothing else


def test_without_votes_the_digest_is_the_keyword_digest_byte_for_byte(
    session_factory: SessionFactory,
) -> None:
    from mailer.config import Settings
    from mailer.context import make_context
    from mailer.pipeline.render import render_digest

    _, control = setup(session_factory)
    ctx = make_context(Settings(secret_key="k" * 32), session_factory, clock=lambda: NOW)
    with session_factory() as session:
        row = subscriber_repo.due_subscribers(session, NOW + timedelta(days=1), None, 10)
        mine = next(r for r in row if r.id == control)
        plans = [planner(session_factory, learner).preview(session, mine, NOW)
                 for learner in (None, Learner())]  # fmt: skip
    assert plans[0].matches == plans[1].matches and plans[0].matches
    with session_factory.begin() as session:
        digest_repo.insert_digests(session, [plans[1]], NOW)
    with session_factory() as session:
        digest_id = session.scalars(select(DigestRow.id)).one()
        stored = digest_repo.load_digest(session, digest_id)
    assert stored is not None and all(m.learned is None for m in stored.matches)
    first, second = render_digest(ctx, stored), render_digest(ctx, stored)
    assert first.rendered.html == second.rendered.html  # deterministic
    assert "You may also like" not in first.rendered.html


def test_an_exclusion_always_wins_over_the_votes(session_factory: SessionFactory) -> None:
    voter, _ = setup(session_factory, profile="learning, -gripper")
    for i in range(0, 10):
        vote(session_factory, voter, f"d1:robot:{i}", Vote.MORE)
    planner(session_factory, Learner()).run(now=NOW, force=True, dry_run=False)
    texts = [(m.paper.title, m.paper.abstract) for m in listed(session_factory, voter)]
    assert texts and not any("gripper" in t + a for t, a in texts)


def test_after_a_fetch_the_stores_papers_are_not_vectorised_again(
    session_factory: SessionFactory,
) -> None:
    """A new space takes the window's and the voted papers' rows from its own fit, with the
    floats vectorising them would give; only texts outside the fit are vectorised."""
    from mailer.pipeline.learning import StoreSpace

    setup(session_factory)
    spaces = StoreSpace()
    with session_factory() as session:
        space = spaces.get(session)
        rows = session.execute(select(PaperRow.id, PaperRow.title, PaperRow.abstract)).all()
    said = space.representation.text
    keys = [("paper", id_) for id_, _, _ in rows] + [("example", 1, NOW)]
    texts = [said(t, a or "") for _, t, a in rows] + ["robot grasping with a gripper"]
    made: list[int] = []

    def text_of(i: int) -> str:
        made.append(i)
        return texts[i]

    found = spaces.vectors(space, keys, text_of)
    assert made == [len(rows)]  # only the seeded text outside the store
    expected = space.vectors(texts)
    assert (found != expected).nnz == 0
    assert found.data.tobytes() == expected.data.tobytes()


def test_a_run_reads_examples_only_for_chunks_with_voters(
    session_factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailer.db import feedback as feedback_repo

    voter, control = setup(session_factory)
    likes_robots_not_language(session_factory, voter)
    asked: list[list[int]] = []
    real = feedback_repo.examples_of

    def spy(session: Session, ids: Sequence[int], newest: int | None = None) -> Any:
        asked.append(list(ids))
        return real(session, ids, newest)

    monkeypatch.setattr(feedback_repo, "examples_of", spy)
    learner = Learner()
    with session_factory() as session:
        learner.load(session, [control])
        assert not learner.has_examples(control)
        learner.load(session, [control, voter])
        assert learner.has_examples(voter) and not learner.has_examples(control)
    assert asked == [[voter]]  # the voterless chunk cost no query
