"""OutcomeWriter: a sending run's outcomes, written on one thread over one kept connection.

A send slot is freed only once its outcome is committed, so how long a write takes is how
long an SMTP connection waits between messages. Checking a connection out of the pool for
every write (a ping on PostgreSQL, a reset on return) and handing each write to whichever
pool thread is free cost the sending process about 0.15 ms of CPU per message (a sixth of
its whole cost, in ``bench/delivery.py``); one connection kept by one thread saves that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from mailer.db.outbox import Outcome, record

log = logging.getLogger(__name__)


class OutcomeWriter:
    """Writes groups of outcomes with ``outbox.record``; ``aclose`` when the run ends."""

    def __init__(self, engine: Engine, now: Callable[[], datetime], bounce_limit: int) -> None:
        self.engine = engine
        self.now = now
        self.bounce_limit = bounce_limit
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailer-record")
        self._connection: Connection | None = None  # opened, used and closed on that thread

    async def write(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Commit these outcomes; for each, whether the row was still ours to write."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._write, outcomes)

    async def aclose(self) -> None:
        """Close the connection (on its thread) and end the thread."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, self._close)
        finally:
            self._thread.shutdown(wait=False)

    def _write(self, outcomes: Sequence[Outcome]) -> list[bool]:
        try:
            return self._record(outcomes)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The database dropped the connection (a restart, an idle timeout): once more on
            # a new one, as the pool's ping before each checkout used to do. Should the lost
            # commit have gone through after all, the rows read as no longer ours: a wrong
            # count in the report, never a wrong row.
            log.warning("database connection lost while recording outcomes; reconnecting")
            return self._record(outcomes)

    def _record(self, outcomes: Sequence[Outcome]) -> list[bool]:
        if self._connection is None:
            self._connection = self.engine.connect()
        try:
            return record(self._connection, outcomes, self.now(), self.bounce_limit)
        except BaseException:
            self._close()  # whatever went wrong, the next write starts on a fresh connection
            raise

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
