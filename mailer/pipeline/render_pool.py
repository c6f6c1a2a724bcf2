"""Worker processes that render claimed digests into wire bytes while the sender sends.

Rendering and serialising a digest costs about as much CPU as sending it, and the GIL keeps
one process on one core: with a pool, the sending process claims, sends and records while
other processes load, render, build, sign and serialise. A child gets the settings, opens its
own database connection and answers a chunk of outbox ids with their bytes.

This module sits below ``pipeline``; the child imports ``pipeline`` when it starts.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailer import logs
from mailer.config import Settings
from mailer.db import digests as digest_repo
from mailer.mail.wire import crlf_only

if TYPE_CHECKING:
    from mailer.context import Context

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One digest's outcome in a child: its wire bytes, or why it failed."""

    data: bytes | None
    error: str | None = None
    crlf_checked: bool = False  # ``data`` is known to pass ``crlf_only``: the sender skips the scan
    sender: str | None = None  # the envelope sender, signed here rather than in the sender


_context: Context | None = None  # the child's own pipeline context
_papers: digest_repo.PaperCache | None = None  # papers read by earlier chunks of this run


def _start_child(settings: Settings, setup: Callable[[], None] | None) -> None:
    global _context, _papers
    from mailer.context import make_context
    from mailer.db.session import make_engine, make_session_factory

    # Ctrl-C reaches the whole process group, and systemd signals every process of a unit:
    # the parent decides when children stop (it finishes their chunks, then shuts them down).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if setup is not None:  # the runtime's process tuning (``daemon.tuning``)
        setup()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    logs.configure(settings.log_level, settings.log_format, logs.secrets_of(settings))
    _context = make_context(settings, make_session_factory(make_engine(settings.database_url)))
    _papers = digest_repo.PaperCache()


def _exit_with_parent(parent: int) -> None:
    """A parent killed hard (SIGKILL, OOM) cannot stop us: notice and go."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _started() -> bool:
    """In a child: answers once the child has started (``RenderPool.ready``)."""
    return _context is not None


def render_chunk(digest_ids: Sequence[int]) -> dict[int, Rendered]:
    """In a child: load, render and serialise these outbox rows (the ones that exist)."""
    from mailer.pipeline.render import render_digest, wire_message

    ctx = _context
    if ctx is None:
        raise RuntimeError("render_chunk runs in a RenderPool process")
    with ctx.session_factory() as session:
        loaded = digest_repo.load_digests(session, digest_ids, _papers)
    out: dict[int, Rendered] = {}
    for digest_id, stored in loaded.items():
        try:
            wire = wire_message(ctx, render_digest(ctx, stored))
        except Exception as exc:  # one unrenderable digest must not take the chunk down
            log.exception("could not build digest %s", digest_id)
            out[digest_id] = Rendered(None, f"{type(exc).__name__}: {exc}")
        else:
            # Checked here, beside the rendering, rather than by the sender, whose every
            # moment counts towards how long its SMTP connections wait.
            checked = wire.crlf_checked or crlf_only(wire.data)
            out[digest_id] = Rendered(wire.data, crlf_checked=checked, sender=wire.sender)
    return out


class RenderPool:
    """``processes`` spawned children rendering chunks of outbox ids; started on first use."""

    def __init__(
        self, settings: Settings, processes: int, child_setup: Callable[[], None] | None = None
    ) -> None:
        # The children must sign links with the key this process uses, even a generated one.
        self._settings = settings.model_copy(update={"secret_key": settings.effective_secret_key()})
        self.processes = processes
        self._child_setup = child_setup  # module-level: it is pickled to each child
        self.submitted = 0  # outbox ids handed to the children so far
        self._executor: ProcessPoolExecutor | None = None
        self._started: Future[bool] | None = None  # the first answer of a child

    def start(self) -> None:
        """Start the children now, without waiting for them (``ready`` says when they are)."""
        if self._executor is not None:
            return
        # spawn, not fork: the parent has an event loop, threads and open connections.
        self._executor = ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_child,
            initargs=(self._settings, self._child_setup),
        )
        self._started = self._executor.submit(_started)
        log.info("started %d render processes", self.processes)

    def ready(self) -> bool:
        """Whether a child has started and answered (a broken pool counts: submit says so)."""
        return self._started is not None and self._started.done()

    def wait_ready(self, timeout: float) -> bool:
        """Start the children and wait up to ``timeout`` seconds until ``ready``."""
        self.start()
        assert self._started is not None
        with contextlib.suppress(Exception):
            self._started.result(timeout)
        return self.ready()

    def submit(self, digest_ids: Sequence[int]) -> Future[dict[int, Rendered]]:
        """Render these rows in a child; the future holds the rows it found."""
        self.start()
        assert self._executor is not None
        future = self._executor.submit(render_chunk, list(digest_ids))
        self.submitted += len(digest_ids)
        return future

    def shutdown(self) -> None:
        """Stop the children (waiting for the chunk each is on); a later submit restarts them."""
        executor, self._executor, self._started = self._executor, None, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
