"""``mailer subscribers rate`` and ``seed``: operators vote and seed for a subscriber."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from mailer.db.papers import upsert_papers
from mailer.db.session import SessionFactory
from mailer.db.tables import FeedbackRow, SuppressionRow
from mailer.models import Paper
from tests.helpers.cli import (
    Invoke,
    cli_fixture,  # noqa: F401  (the `cli` fixture)
)

PAPER = Paper(
    key="arxiv:2611.00001",
    arxiv_id="2611.00001",
    title="Diffusion Policy for Visuomotor Control",
    abstract="We learn a diffusion policy that denoises robot actions.",
    source="test",
)


def examples(sessions: SessionFactory) -> list[tuple[str, int, str]]:
    with sessions() as session:
        rows = session.scalars(select(FeedbackRow).order_by(FeedbackRow.id))
        return [(r.key, r.vote, r.origin) for r in rows]


def setup(cli: Invoke, sessions: SessionFactory) -> None:
    assert (
        cli("subscribers", "add", "a@example.org", "--keywords", "robots", "--confirmed").code == 0
    )
    with sessions.begin() as session:
        upsert_papers(session, [PAPER], datetime(2026, 11, 22, tzinfo=UTC))


def test_rate_records_replaces_and_clears_a_vote(
    cli: Invoke, session_factory: SessionFactory
) -> None:
    setup(cli, session_factory)
    done = cli("subscribers", "rate", "a@example.org", "2611.00001", "--less")
    assert done.code == 0 and "less like this on arxiv:2611.00001" in done.out
    assert cli("subscribers", "rate", "a@example.org", "arxiv:2611.00001", "--more").code == 0
    assert examples(session_factory) == [("arxiv:2611.00001", 1, "operator")]
    assert cli("subscribers", "rate", "a@example.org", "2611.00001", "--clear").code == 0
    assert examples(session_factory) == []


def test_rate_refuses_bad_arguments_with_one_line(
    cli: Invoke, session_factory: SessionFactory
) -> None:
    setup(cli, session_factory)
    for args, message in (
        (("2611.00001",), "exactly one of --more, --less or --clear"),
        (("2611.00001", "--more", "--less"), "exactly one of"),
        (("9999.99999", "--more"), "no stored paper '9999.99999'"),
    ):
        result = cli("subscribers", "rate", "a@example.org", *args)
        assert result.code == 2 and message in result.err and "Traceback" not in result.err
    nobody = cli("subscribers", "rate", "nobody@example.org", "2611.00001", "--more")
    assert nobody.code == 2 and "no subscriber" in nobody.err
    assert examples(session_factory) == []


def test_seed_adds_each_entry_once_and_a_bad_file_changes_nothing(
    cli: Invoke, session_factory: SessionFactory, tmp_path: Path
) -> None:
    setup(cli, session_factory)
    csl = tmp_path / "zotero.json"
    csl.write_text(json.dumps([
        {"title": "World Models", "abstract": "Agents dream.", "DOI": "10.5555/WM"},
        {"title": "Diffusion Policy", "URL": "https://arxiv.org/abs/2611.00001v2"},
        {"abstract": "an entry without a title"},
    ]))  # fmt: skip
    done = cli("subscribers", "seed", "a@example.org", str(csl))
    assert done.code == 0 and "added 2 examples from a CSL-JSON file" in done.out
    assert "1 entries without a title skipped" in done.out
    assert examples(session_factory) == [
        ("doi:10.5555/wm", 1, "seed"),
        ("arxiv:2611.00001", 1, "seed"),
    ]
    ids = tmp_path / "ids.txt"
    ids.write_text("2611.00001\n# a comment\narXiv:2611.00002v1\n")
    for path, message in (
        (ids, "1 arXiv ids are not in the paper store (2611.00002)"),
        (tmp_path / "missing.bib", "cannot read"),
    ):
        result = cli("subscribers", "seed", "a@example.org", str(path))
        assert result.code == 2 and message in result.err and "Traceback" not in result.err
    big = tmp_path / "big.txt"
    big.write_bytes(b"2611.00001\n" * 300_000)
    assert "over 2 MB" in cli("subscribers", "seed", "a@example.org", str(big)).err
    assert len(examples(session_factory)) == 2


def test_remove_erases_the_votes(cli: Invoke, session_factory: SessionFactory) -> None:
    setup(cli, session_factory)
    cli("subscribers", "rate", "a@example.org", "2611.00001", "--more")
    assert cli("subscribers", "remove", "a@example.org", "--yes").code == 0
    assert examples(session_factory) == []
    with session_factory() as session:
        assert session.scalars(select(SuppressionRow)).first() is not None


def test_why_shows_each_papers_reason_and_learned_part_and_export_has_the_votes(
    cli: Invoke, session_factory: SessionFactory
) -> None:
    from mailer.pipeline.learning import Learner
    from tests.test_planning_learned import NOW, likes_robots_not_language, planner, setup

    voter, _ = setup(session_factory)
    likes_robots_not_language(session_factory, voter)
    planner(session_factory, Learner()).run(now=NOW, force=True, dry_run=False)
    why = cli("why", "voter@example.org", "--date", NOW.date().isoformat())
    assert why.code == 0, why.err
    assert "-- matched: learning (learned +" in why.out
    assert "-- you may also like: resembles 'robot study 1." in why.out
    control = cli("why", "control@example.org", "--date", NOW.date().isoformat())
    assert "-- matched: learning (no votes yet: keyword rank)" in control.out
    facts = json.loads(cli("why", "voter@example.org", "--date", "2026-11-23", "--json").out)
    assert {"learned", "resembles", "matched"} <= set(facts["facts"]["listed"][0])
    exported = cli("subscribers", "export", "--format", "json", "--email", "voter@example.org")
    (person,) = json.loads(exported.out)
    assert sorted(v["vote"] for v in person["votes"]) == ["less like this"] + ["more like this"] * 3
    assert person["votes"][0]["origin"] == "email" and person["votes"][0]["title"]
