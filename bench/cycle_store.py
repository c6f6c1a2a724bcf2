"""The whole-cycle bench's databases: seeded once per size, copied fresh for every run."""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from delivery import checkpoint
from matching import SEED, ProfileMaker, load_sample, make_batch

# Subscribers imported through the import path; beyond that (a 1M run) they are copies of the
# imported ones with new addresses, made in the database: importing parses and compiles every
# profile, about 25 minutes for 1M on a loaded 2-core machine.
IMPORT_BATCH = 100_000
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass
class Store:
    """One benchmark database: a seeded template and fresh copies of it per run."""

    kind: str
    folder: Path
    template: str = ""

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder / (name + '.db')}"
        from sqlalchemy.engine import make_url

        return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

    def create(self, name: str) -> str:
        """An empty database called ``name``; its URL."""
        if self.kind == "postgres":
            self._admin(
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
            )
        return self.url(name)

    def copy(self, name: str) -> str:
        """A fresh copy of the seeded template; its URL."""
        if self.kind == "sqlite":
            checkpoint(self.folder / f"{self.template}.db")
            shutil.copyfile(self.folder / f"{self.template}.db", self.folder / f"{name}.db")
            for suffix in ("-wal", "-shm"):
                (self.folder / f"{name}.db{suffix}").unlink(missing_ok=True)
        else:
            self._admin(
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"',
            )
        return self.url(name)

    def drop(self, name: str) -> None:
        if self.kind == "sqlite":
            for path in self.folder.glob(f"{name}.db*"):
                path.unlink()
        else:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def bytes_of_digests(self, name: str) -> int:
        """What the outbox takes: the SQLite file, or PostgreSQL's digest tables with indexes."""
        if self.kind == "sqlite":
            return sum(p.stat().st_size for p in self.folder.glob(f"{name}.db*"))
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(name))
        try:
            with engine.connect() as conn:
                query = text(
                    "SELECT pg_total_relation_size('digest')"
                    " + pg_total_relation_size('digest_profile')"
                )
                return int(conn.execute(query).scalar_one())
        finally:
            engine.dispose()

    def database_bytes(self, name: str) -> int:
        """The whole database's size on disk (the SQLite file and its journal)."""
        if self.kind == "sqlite":
            return sum(p.stat().st_size for p in self.folder.glob(f"{name}.db*"))
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(name))
        try:
            with engine.connect() as conn:
                return int(
                    conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
                )
        finally:
            engine.dispose()

    def _admin(self, *statements: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


def seed(url: str, count: int, now: datetime) -> dict[str, float]:
    """1,000 papers as a fetch stores them, N subscribers imported two days ago (so due)."""
    from mailer.context import Defaults
    from mailer.db import papers as paper_repo
    from mailer.db.migrate import upgrade
    from mailer.db.session import make_engine, make_session_factory
    from mailer.subscribers.importer import import_csv

    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    sample = load_sample()
    started = time.perf_counter()
    with sessions.begin() as session:
        batch = [_unnumbered(p) for p in make_batch(sample, random.Random(SEED))]
        paper_repo.upsert_papers(session, batch, now - timedelta(hours=1))
    papers_s = time.perf_counter() - started
    maker = ProfileMaker(sample, SEED + 1)
    started = time.perf_counter()
    imported = min(count, IMPORT_BATCH)
    rows = "".join(_csv_row(i, maker.profile()) for i in range(imported))
    report = import_csv(
        sessions,
        ("email,keywords\n" + rows).encode(),
        defaults=Defaults(),
        confirmed=True,
        now=now - timedelta(days=2),
    )
    if report.errors or len(report.imported) != imported:
        raise SystemExit(f"import refused rows: {report.errors[:3]}")
    engine.dispose()
    _replicate(url, imported, count)
    _make_due(url, now - timedelta(minutes=1))
    _vacuum(url)
    subscribers_s = time.perf_counter() - started
    return {"papers_s": round(papers_s, 2), "subscribers_s": round(subscribers_s, 2)}


def _unnumbered(paper: Any) -> Any:
    """A batch paper as a source hands it over: no store id yet, a source name."""
    return replace(paper, id=None, source="file")


def _make_due(url: str, at: datetime) -> None:
    """Every subscriber's next digest due at ``at``: one period each, as on a worker's tick."""
    from sqlalchemy import update

    from mailer.db.session import make_engine, make_session_factory
    from mailer.db.tables import SubscriberRow

    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        session.execute(update(SubscriberRow).values(next_due_at=at))
    engine.dispose()


def _replicate(url: str, imported: int, count: int) -> None:
    """Subscribers ``imported + 1`` to ``count`` as copies of the imported ones (each profile,
    compiled, used ``count / imported`` times), on PostgreSQL in one statement."""
    if count <= imported:
        return
    if not url.startswith("postgresql"):
        raise SystemExit(f"more than {imported:,} subscribers: PostgreSQL only")
    from sqlalchemy import create_engine, text

    columns = (
        "status, profile, profile_compiled, frequency, send_time, timezone, weekday,"
        " next_due_at, created_at, confirmed_at, hard_bounces, soft_bounces"
    )
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            first = conn.execute(text("SELECT min(id) FROM subscriber")).scalar_one()
            conn.execute(
                text(
                    f"INSERT INTO subscriber (email, {columns})"
                    f" SELECT 'reader' || lpad(n::text, 7, '0') || '@example.net', {columns}"
                    " FROM generate_series(CAST(:start AS bigint), CAST(:stop AS bigint)) AS n"
                    " JOIN subscriber s"
                    " ON s.id = CAST(:first AS bigint) + n % CAST(:imported AS bigint) ORDER BY n"
                ),
                {"start": imported, "stop": count - 1, "imported": imported, "first": first},
            )
    finally:
        engine.dispose()


def _vacuum(url: str) -> None:
    """On PostgreSQL, what autovacuum would have done to a table that has been in service:
    the import's and ``_make_due``'s dead rows cleared and the planner's statistics current."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def _csv_row(i: int, profile: str) -> str:
    quoted = profile.replace('"', '""')
    return f'reader{i:07d}@example.net,"{quoted}"\n'
