"""Alembic, driven from code: upgrade, downgrade and the current revision.

Alembic is imported inside each function: it costs about a fifth of a second to import, and
every CLI process (``mailer send``, ``mailer worker``, each render child) loads this module
while only ``mailer db ...``, ``mailer health`` and a migrating start use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailer.resources import shipped

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Engine


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(shipped("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default: the newest)."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``base`` empties the database)."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    """The newest revision the package ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()
