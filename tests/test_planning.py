"""The planner: outbox rows before sending, skip reasons, no paper twice, insert-or-skip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from mailer.context import Defaults, PlanOptions
from mailer.db import digests as digest_repo
from mailer.db import papers as paper_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow, SubscriberRow
from mailer.models import DigestStatus, Paper, Period
from mailer.pipeline.plan import DigestPlanner
from mailer.subscribers.manage import SubscriberInput, add

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _paper(key: str, title: str, abstract: str = "") -> Paper:
    return Paper(key=key, title=title, abstract=abstract, source="test")


def _store(session_factory: SessionFactory, at: datetime, *papers: Paper) -> None:
    with session_factory.begin() as session:
        paper_repo.upsert_papers(session, papers, at)


def _subscribe(session_factory: SessionFactory, email: str, profile: str) -> int:
    raw = SubscriberInput(email, profile, send_time="08:00", timezone="UTC")
    return add(
        session_factory, raw, confirmed=True, defaults=Defaults(), now=T0 - timedelta(hours=2)
    ).id


def _planner(session_factory: SessionFactory) -> DigestPlanner:
    counter = iter(range(1_000_000))
    return DigestPlanner(
        session_factory,
        new_message_id=lambda: f"<{next(counter)}@example.org>",
        options=PlanOptions(first_digest_backfill=True),
    )


def _digests(session_factory: SessionFactory, subscriber_id: int) -> list[DigestRow]:
    with session_factory() as session:
        return list(
            session.scalars(
                select(DigestRow)
                .where(DigestRow.subscriber_id == subscriber_id)
                .order_by(DigestRow.id)
            )
        )


def test_plans_a_pending_row_with_the_matched_papers(session_factory: SessionFactory) -> None:
    robots = _paper("a", "Diffusion policy for robots")
    _store(session_factory, T0 - timedelta(hours=1), robots, _paper("b", "Graph neural networks"))
    sub = _subscribe(session_factory, "alice@example.org", "diffusion policy")
    report = _planner(session_factory).run(now=T0, force=False, dry_run=False)
    assert report.queued == 1
    (digest,) = _digests(session_factory, sub)
    assert digest.status == DigestStatus.PENDING.value
    assert (digest.period, digest.paper_count, digest.considered_count) == ("2026-11-22", 1, 2)
    with session_factory() as session:
        stored = digest_repo.load_digest(session, digest.id)
    assert stored is not None
    assert [m.interests for m in stored.matches] == [("diffusion policy",)]


def test_records_skips_instead_of_sending_empty_mail(session_factory: SessionFactory) -> None:
    nobody = _subscribe(session_factory, "nobody@example.org", "quantum chromodynamics")
    report = _planner(session_factory).run(now=T0, force=False, dry_run=False)
    assert (report.queued, report.no_papers) == (0, 1)
    assert _digests(session_factory, nobody)[0].note == "no_papers"

    _store(session_factory, T0 + timedelta(hours=1), _paper("a", "Diffusion policy for robots"))
    report = _planner(session_factory).run(now=T0 + timedelta(days=1), force=False, dry_run=False)
    assert (report.queued, report.no_match) == (0, 1)
    assert _digests(session_factory, nobody)[-1].note == "no_match"


def test_a_paper_is_never_mailed_twice(session_factory: SessionFactory) -> None:
    paper = _paper("a", "Diffusion policy for robots")
    _store(session_factory, T0 - timedelta(hours=1), paper)
    sub = _subscribe(session_factory, "alice@example.org", "diffusion")
    _planner(session_factory).run(now=T0, force=False, dry_run=False)
    # The same paper seen again through another source is the same paper: nothing new.
    _store(session_factory, T0 + timedelta(hours=2), paper)
    report = _planner(session_factory).run(now=T0 + timedelta(days=1), force=False, dry_run=False)
    assert report.queued == 0
    digests = _digests(session_factory, sub)
    assert [d.paper_count for d in digests] == [1, 0]


def test_planning_twice_creates_one_row_per_period(session_factory: SessionFactory) -> None:
    _store(session_factory, T0 - timedelta(hours=1), _paper("a", "Diffusion policy"))
    sub = _subscribe(session_factory, "alice@example.org", "diffusion")
    first = _planner(session_factory).run(now=T0, force=True, dry_run=False)
    second = _planner(session_factory).run(now=T0, force=True, dry_run=False)
    assert (first.queued, second.queued, second.already_planned) == (1, 0, 1)
    assert len(_digests(session_factory, sub)) == 1


def test_concurrent_planners_never_duplicate_a_period(session_factory: SessionFactory) -> None:
    _store(session_factory, T0 - timedelta(hours=1), _paper("a", "Diffusion policy"))
    _subscribe(session_factory, "alice@example.org", "diffusion")
    # Both planners read the subscriber as due before either writes (a race between daemons).
    one, two = _planner(session_factory), _planner(session_factory)
    with session_factory() as s1, session_factory() as s2:
        row1 = subscriber_repo.due_subscriber(s1, "alice@example.org")
        row2 = subscriber_repo.due_subscriber(s2, "alice@example.org")
        assert row1 is not None and row2 is not None
        plan1 = one.preview(s1, row1, T0)
        plan2 = two.preview(s2, row2, T0)
        assert digest_repo.insert_digest(s1, plan1, T0) is not None
        s1.commit()
        assert digest_repo.insert_digest(s2, plan2, T0) is None
        s2.commit()
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(DigestRow)) == 1


def test_dry_run_stores_nothing(session_factory: SessionFactory) -> None:
    _store(session_factory, T0 - timedelta(hours=1), _paper("a", "Diffusion policy"))
    _subscribe(session_factory, "alice@example.org", "diffusion")
    report = _planner(session_factory).run(now=T0, force=False, dry_run=True)
    assert [line.papers for line in report.lines] == [("Diffusion policy",)]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(DigestRow)) == 0
        row = session.scalars(select(SubscriberRow)).one()
        assert row.next_due_at == datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def test_profiles_are_stored_compiled_and_never_used_stale(
    session_factory: SessionFactory,
) -> None:
    from mailer.pipeline.plan import compiled_profile
    from mailer.subscribers.manage import Changes, update

    _store(session_factory, T0 - timedelta(hours=1), _paper("a", "Diffusion policy"))
    sub = _subscribe(session_factory, "alice@example.org", "diffusion")
    _planner(session_factory).run(now=T0, force=False, dry_run=False)
    with session_factory() as session:
        row = session.get(SubscriberRow, sub)
        assert row is not None and row.profile_compiled is not None
        assert '"text":"diffusion"' in row.profile_compiled.replace(" ", "")
    update(session_factory, sub, Changes(profile="graph networks"), T0)
    with session_factory() as session:
        due = subscriber_repo.due_subscriber(session, "alice@example.org")
        assert due is not None
        profile, fresh = compiled_profile(due)  # the stored form is for the old text: rebuilt
        assert profile is not None and fresh is not None
        assert [i.text for i in profile.interests] == ["graph networks"]


def test_papers_already_sent_are_looked_up_per_subscriber(session_factory: SessionFactory) -> None:
    # One query for what a chunk was sent: each subscriber still has only their own history.
    _store(session_factory, T0 - timedelta(hours=1), _paper("a", "Diffusion policy"))
    _subscribe(session_factory, "alice@example.org", "diffusion")
    _subscribe(session_factory, "bob@example.org", "diffusion")
    with session_factory() as session:
        alice = subscriber_repo.due_subscriber(session, "alice@example.org")
        assert alice is not None
        # Alice got the paper in a digest whose window ended after it arrived.
        earlier = replace(
            _planner(session_factory).preview(session, alice, T0),
            period=Period.parse("2026-11-21"),
            window_end=T0 - timedelta(minutes=30),
        )
        assert digest_repo.insert_digest(session, earlier, T0) is not None
        session.commit()
    report = _planner(session_factory).run(now=T0, force=False, dry_run=True)
    listed = {line.email: line.papers for line in report.lines}
    assert listed == {"alice@example.org": (), "bob@example.org": ("Diffusion policy",)}
