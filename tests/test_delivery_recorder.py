"""OutcomeWriter: one thread and one kept connection write a run's outcomes, and reconnect."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, select, text

try:  # tests/ may or may not be a package; the helpers import either way
    from helpers.delivery_worker import T0, build_message, seed
    from helpers.smtp_server import SmtpServer
except ModuleNotFoundError:
    from tests.helpers.delivery_worker import T0, build_message, seed
    from tests.helpers.smtp_server import SmtpServer

from mailer.db.outbox import ClaimedDigest, Outcome, claim
from mailer.db.session import SessionFactory
from mailer.db.tables import DigestRow
from mailer.delivery import RetryPolicy, SmtpConfig, SmtpTransport, deliver_due
from mailer.delivery.recorder import OutcomeWriter
from mailer.models import DigestStatus


def _checkouts_by_thread(engine: Engine) -> list[str]:
    names: list[str] = []
    event.listen(engine, "checkout", lambda *_: names.append(threading.current_thread().name))
    return names


def test_a_run_writes_all_its_outcomes_over_one_connection(
    engine: Engine, session_factory: SessionFactory
) -> None:
    seed(session_factory, 30)
    checkouts = _checkouts_by_thread(engine)

    async def go() -> int:
        with SmtpServer() as server:
            config = SmtpConfig(server.host, server.port, security="none", concurrency=4)
            async with SmtpTransport(config) as transport:
                report = await deliver_due(
                    session_factory, transport, build_message, RetryPolicy(), now=lambda: T0
                )
        return report.sent

    assert asyncio.run(go()) == 30
    assert [name for name in checkouts if name.startswith("mailer-record")] == ["mailer-record_0"]
    with session_factory() as session:
        statuses = set(session.scalars(select(DigestRow.status)))
    assert statuses == {"sent"}


def _claimed(sessions: SessionFactory, count: int) -> tuple[ClaimedDigest, ...]:
    seed(sessions, count)
    with sessions() as session:
        return claim(session, T0, T0 + timedelta(minutes=5), count).digests


def _drop_connection(engine: Engine, writer: OutcomeWriter) -> None:
    """Lose the writer's connection under it, as a database restart would."""
    kept = writer._connection
    assert kept is not None
    if engine.dialect.name == "postgresql":
        backend = kept.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        kept.commit()
        with engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    else:
        dbapi = kept.connection.dbapi_connection
        assert dbapi is not None
        dbapi.close()


def test_a_connection_the_database_dropped_is_replaced_and_nothing_is_lost(
    engine: Engine, session_factory: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = _claimed(session_factory, 2)
    writer = OutcomeWriter(engine, lambda: T0, bounce_limit=1)

    async def go() -> list[list[bool]]:
        try:
            written = [await writer.write([_sent(first)])]
            await asyncio.to_thread(_drop_connection, engine, writer)
            written.append(await writer.write([_sent(second)]))
            return written
        finally:
            await writer.aclose()

    assert asyncio.run(go()) == [[True], [True]]
    assert "reconnecting" in caplog.text
    with session_factory() as session:
        statuses = set(session.scalars(select(DigestRow.status)))
    assert statuses == {"sent"}


def _sent(digest: ClaimedDigest) -> Outcome:
    return Outcome(digest=digest, status=DigestStatus.SENT, code=250, reply="ok")
