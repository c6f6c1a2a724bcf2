"""Shared fixtures: a migrated database per test (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from mailer.db.migrate import upgrade
from mailer.db.session import SessionFactory, make_engine, make_session_factory
from tests.browser.harness import Harness, running_app

POSTGRES_URL = os.environ.get("MAILER_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


class _PostgresTemplates:
    """Migrates one template database per test session; each test clones it (fast)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.template = f"mailer_tpl_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.template}"'))
        upgrade(self.url_for(self.template))

    def url_for(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def clone(self) -> str:
        name = f"mailer_t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        self.drop(self.template)
        self.admin.dispose()


@pytest.fixture(scope="session")
def _pg_templates() -> Iterator[_PostgresTemplates | None]:
    if not POSTGRES_URL:
        yield None
        return
    templates = _PostgresTemplates(POSTGRES_URL)
    yield templates
    templates.close()


@pytest.fixture(params=BACKENDS)
def db_url(
    request: pytest.FixtureRequest,
    tmp_path: os.PathLike[str],
    _pg_templates: _PostgresTemplates | None,
) -> Iterator[str]:
    """The URL of a freshly migrated, empty database for this test."""
    if request.param == "sqlite":
        url = f"sqlite:///{os.fspath(tmp_path)}/mailer.db"
        upgrade(url)
        yield url
        return
    assert _pg_templates is not None
    name = _pg_templates.clone()
    yield _pg_templates.url_for(name)
    _pg_templates.drop(name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the test database."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> SessionFactory:
    """A session factory on the test database."""
    return make_session_factory(engine)


# The web app over a real socket, and a client for it: shared by the web tests (a test module
# may define its own ``app`` or ``client`` to change them).
@pytest.fixture
def app(session_factory: SessionFactory) -> Iterator[Harness]:
    with running_app(session_factory) as harness:
        yield harness


@pytest.fixture
def client(app: Harness) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url(), timeout=10) as http:
        yield http
