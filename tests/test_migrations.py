"""Migrations and models agree, and migrations go down and up again on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from mailer.db.migrate import current_revision, downgrade, head_revision, upgrade
from mailer.db.tables import Base


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_database_is_at_head(engine: Engine, db_url: str) -> None:
    assert current_revision(engine) == head_revision(db_url)


def test_downgrade_to_base_and_upgrade_again(engine: Engine, db_url: str) -> None:
    downgrade(db_url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(db_url)
    assert {"subscriber", "paper", "digest", "digest_profile", "source_state"} <= set(
        inspect(engine).get_table_names()
    )


def test_ids_are_never_reused_after_an_erasure(db_url: str) -> None:
    """Old emails' links carry subscriber and digest ids: a new row must never inherit one."""
    from datetime import UTC, datetime

    from mailer.context import Defaults
    from mailer.db.session import make_engine, make_session_factory
    from mailer.subscribers.manage import SubscriberInput, add, remove

    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    first = add(sessions, SubscriberInput("a@example.org", "x"), confirmed=True,
                defaults=Defaults(), now=now)  # fmt: skip
    second = add(sessions, SubscriberInput("b@example.org", "x"), confirmed=True,
                 defaults=Defaults(), now=now)  # fmt: skip
    remove(sessions, second.id, now)
    third = add(sessions, SubscriberInput("c@example.org", "x"), confirmed=True,
                defaults=Defaults(), now=now)  # fmt: skip
    assert third.id not in (first.id, second.id)
    engine.dispose()
