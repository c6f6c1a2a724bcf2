"""The optional sentence-embedding backend (MAILER_RELEVANCE_MODEL) on a tiny model built here."""

from __future__ import annotations

import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sentence_transformers
from sentence_transformers import SentenceTransformer

from mailer.db import subscribers as subscriber_repo
from mailer.db.session import SessionFactory
from mailer.errors import ConfigError
from mailer.models import Match
from mailer.pipeline.encoder import load_encoder
from mailer.pipeline.learning import Learner, store_spaces
from mailer.relevance import Vote
from mailer.relevance.embedding import EmbeddingSpace
from tests.helpers.cli import (
    Invoke,
    cli_fixture,  # noqa: F401  (the `cli` fixture)
)
from tests.helpers.embedding import save_tiny_model, topic_vectors
from tests.test_planning_learned import (
    NOW,
    TOPICS,
    likes_robots_not_language,
    listed,
    planner,
    setup,
)

TEXTS = ["robot gripper arm", "image pixels camera", "tokens grammar", "nothing known here"]


@pytest.fixture(name="model_dir")
def model_dir_fixture(tmp_path: Path) -> Path:
    """A model that puts the vision topic's words where the robot topic's are."""
    return save_tiny_model(tmp_path / "model", topic_vectors(TOPICS, {"vision": "robot"}))


def topic(match: Match) -> str:
    return match.paper.key.split(":")[1]


def test_the_spaces_vectors_are_the_models_unit_vectors(model_dir: Path) -> None:
    encoder = load_encoder(model_dir)
    space = EmbeddingSpace(encoder, TEXTS)
    reference = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    expected = reference.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    found = space.vectors(TEXTS).toarray()
    assert space.size == 4 and found.shape == (4, 4)
    np.testing.assert_allclose(found, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(found[0], found[1])  # vision words lie on the robot axis
    assert not found[3].any()  # no known word: a zero row, like a text of unknown terms
    assert space.background is not None
    np.testing.assert_allclose(space.background, expected.mean(axis=0), rtol=1e-6)


def test_each_text_is_encoded_once_per_process(model_dir: Path) -> None:
    encoder = load_encoder(model_dir)
    space = EmbeddingSpace(encoder, TEXTS[:2])
    space.vectors(TEXTS)
    space.vectors(list(reversed(TEXTS)) + TEXTS)
    assert encoder.encoded == len(TEXTS)


def test_the_learned_ranking_follows_the_models_vectors(
    session_factory: SessionFactory, model_dir: Path
) -> None:
    voter, control = setup(session_factory)
    likes_robots_not_language(session_factory, voter)
    embedded = Learner(store_spaces(model_dir))
    planner(session_factory, embedded).run(now=NOW, force=True, dry_run=False)
    mine = listed(session_factory, voter)
    # To this model a vision paper is a robot paper: both lead, nothing else comes between.
    assert {topic(m) for m in mine[:10]} == {"robot", "vision"}
    assert topic(mine[-1]) == "language"  # the disliked topic sinks
    assert all(m.learned is not None and m.resembles is None for m in mine)
    # Equal vectors, equal learned scores: 0.5 above the average paper's score of 0, in the
    # window's standard deviations (worked by hand from the four axes: 0.94, -0.47, -1.41).
    learned = {topic(m): round(m.learned or 0.0, 2) for m in mine}
    assert learned == {"robot": 0.94, "vision": 0.94, "rl": -0.47, "language": -1.41}
    theirs = listed(session_factory, control)
    assert len(theirs) == 20 and all(m.learned is None for m in theirs)


def test_also_like_offers_missed_papers_near_a_liked_one_in_the_models_space(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    model = save_tiny_model(tmp_path / "axes", topic_vectors(TOPICS))  # one axis per topic
    voter, _ = setup(session_factory)
    likes_robots_not_language(session_factory, voter)
    planner(session_factory, Learner(store_spaces(model))).run(now=NOW, force=True, dry_run=False)
    also = [m for m in listed(session_factory, voter) if m.resembles is not None]
    assert len(also) == 5 and {topic(m) for m in also} == {"robot"}
    assert all(m.interests == () and (m.resembles or "").startswith("robot study 1.") for m in also)


def test_the_same_votes_in_tf_idf_do_not_lift_the_vision_papers(
    session_factory: SessionFactory,
) -> None:
    voter, _ = setup(session_factory)
    likes_robots_not_language(session_factory, voter)
    planner(session_factory, Learner()).run(now=NOW, force=True, dry_run=False)
    top = [topic(m) for m in listed(session_factory, voter)[:10]]
    assert top[:5] == ["robot"] * 5 and "vision" not in top[:5]


def test_without_votes_the_embedding_backend_leaves_the_keyword_digest(
    session_factory: SessionFactory, model_dir: Path
) -> None:
    _, control = setup(session_factory)
    learner = Learner(store_spaces(model_dir))
    with session_factory() as session:
        due = subscriber_repo.due_subscribers(session, NOW + timedelta(days=1), None, 10)
        mine = next(row for row in due if row.id == control)
        plans = [planner(session_factory, each).preview(session, mine, NOW)
                 for each in (None, learner)]  # fmt: skip
    assert plans[0].matches and plans[0].matches == plans[1].matches


def test_loading_never_touches_the_network_and_runs_offline(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the embedding backend opened a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    seen: list[tuple[str | None, dict[str, Any]]] = []
    real = sentence_transformers.SentenceTransformer

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append((__import__("os").environ.get("HF_HUB_OFFLINE"), kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", spy)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    encoder = load_encoder(model_dir)
    assert encoder.encode(TEXTS).shape == (4, 4)
    assert seen == [("1", {"device": "cpu", "local_files_only": True})]
    assert "HF_HUB_OFFLINE" not in __import__("os").environ  # put back as it was


def test_a_folder_that_is_not_a_model_is_one_configuration_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "no.Such"}]')
    for folder, words in (
        (tmp_path / "missing", "is not a sentence-transformers model directory"),
        (tmp_path, "is not a sentence-transformers model directory"),
        (broken, "cannot load the model in"),
    ):
        with pytest.raises(ConfigError, match=words) as raised:
            load_encoder(folder)
        assert str(raised.value).startswith("MAILER_RELEVANCE_MODEL")
        assert "\n" not in str(raised.value)


def test_without_the_extra_the_setting_is_a_configuration_error(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ConfigError, match=r"needs the embeddings extra \(pip install"):
        load_encoder(model_dir)


def test_the_cli_stops_at_startup_with_one_line_and_exit_3(
    cli: Invoke, session_factory: SessionFactory, tmp_path: Path
) -> None:
    for folder in (tmp_path / "nowhere", tmp_path):
        result = cli("send", "--dry-run", env={"MAILER_RELEVANCE_MODEL": str(folder)})
        assert result.code == 3, result.err
        assert result.err.startswith("error: configuration error: MAILER_RELEVANCE_MODEL: ")
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
    good = save_tiny_model(tmp_path / "good", topic_vectors(TOPICS))
    assert cli("send", "--dry-run", env={"MAILER_RELEVANCE_MODEL": str(good)}).code == 0
    fetched = cli("fetch", "--source", "file:/nonexistent", env={"MAILER_RELEVANCE_MODEL": "/x"})
    assert "MAILER_RELEVANCE_MODEL" not in fetched.err  # a command that does not rank


def test_the_preferences_page_says_the_words_are_not_the_embedding_models(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    from dataclasses import replace

    import httpx

    from mailer.subscribers import feedback
    from mailer.subscribers.manage import SubscriberInput, add
    from mailer.tokens import Purpose
    from mailer.web.app import create_app
    from tests.browser.harness import SECRET, Clock, make_ctx, seed_papers
    from tests.helpers.web_server import WebServer

    clock = Clock()
    base = make_ctx(session_factory, clock)
    seed_papers(base)
    for ctx, says in ((base, False), (replace(base, relevance_model=tmp_path), True)):
        raw = SubscriberInput(f"{says}@example.org".lower(), "diffusion policy")
        subscriber = add(session_factory, raw, confirmed=True, defaults=ctx.defaults, now=clock())
        feedback.vote(session_factory, subscriber.id, 1, Vote.MORE, origin="email", now=clock())
        token = ctx.tokens.make(Purpose.PREFERENCES, subscriber.id)
        with WebServer(create_app(ctx, secret_key=SECRET)) as server, httpx.Client() as client:
            page = client.get(server.url(f"/preferences/{token}")).text
        assert "More of: <strong>" in page
        assert ("it cannot name words" in page) is says
