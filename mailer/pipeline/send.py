"""The send stage: build each claimed digest's email (here or in render processes), deliver."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator, Sequence
from concurrent.futures import Future

from mailer.clock import utc_now
from mailer.context import Context
from mailer.db import digests as digest_repo
from mailer.db.digests import StoredDigest
from mailer.delivery import (
    ClaimedDigest,
    DeliveryReport,
    OutboxFeed,
    RetryPolicy,
    Transport,
    WireMessage,
    deliver_due,
)
from mailer.pipeline.render import build_digest_message, render_digest, wire_message
from mailer.pipeline.render_pool import Rendered, RenderPool

log = logging.getLogger(__name__)


class DigestMessages:
    """Builds the emails of claimed outbox rows, loading each claimed batch in a few queries.

    ``prepare`` (run by the sender right after each claim) loads the batch's digests,
    subscribers and papers at once; calling the object then builds one message from what
    was loaded, or loads that row alone when it was not prepared.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._loaded: dict[int, StoredDigest] = {}
        self._papers = digest_repo.PaperCache()

    def prepare(self, claimed: Sequence[ClaimedDigest]) -> None:
        """Load the digests of a claimed batch."""
        with self.ctx.session_factory() as session:
            loaded = digest_repo.load_digests(session, [c.digest_id for c in claimed], self._papers)
        self._loaded.update(loaded)

    def __call__(self, claimed: ClaimedDigest) -> WireMessage | Awaitable[WireMessage]:
        """The email for one claimed row (each prepared row is used once, then dropped)."""
        stored = self._loaded.pop(claimed.digest_id, None)
        if stored is None:
            return build_digest_message(self.ctx, claimed)
        return wire_message(self.ctx, render_digest(self.ctx, stored))


class PooledDigestMessages(DigestMessages):
    """``DigestMessages`` that hands large claimed batches to render processes.

    A claimed batch of at least ``min_batch`` rows is split into chunks, each rendered by a
    child while earlier messages are being sent; smaller batches, batches claimed while the
    children are still starting (and any row the pool could not render because it broke)
    are rendered here.
    """

    CHUNK = 20  # small: the first messages of a batch are ready soon after it is claimed
    TIMEOUT = 60.0  # seconds a send waits for its chunk before rendering the digest itself

    def __init__(self, ctx: Context, pool: RenderPool, min_batch: int = 50) -> None:
        super().__init__(ctx)
        self.pool = pool
        self.min_batch = min_batch
        self._pending: dict[int, Future[dict[int, Rendered]]] = {}

    def prepare(self, claimed: Sequence[ClaimedDigest]) -> None:
        """Send the batch to the render processes (small batches load here)."""
        if len(claimed) < self.min_batch:
            super().prepare(claimed)
            return
        if not self.pool.ready():
            # A child takes a second or more to start (it imports the whole application):
            # the first batches are rendered here meanwhile, so the first messages leave
            # without waiting for it.
            self.pool.start()
            super().prepare(claimed)
            return
        start = 0
        for size in _chunk_sizes(len(claimed), self.CHUNK):
            chunk = [c.digest_id for c in claimed[start : start + size]]
            try:
                future = self.pool.submit(chunk)
            except Exception:  # a broken pool: render the rest of the batch here
                log.exception("render processes unavailable; rendering in this process")
                super().prepare(claimed[start:])
                return
            self._pending.update(dict.fromkeys(chunk, future))
            start += size

    def __call__(self, claimed: ClaimedDigest) -> WireMessage | Awaitable[WireMessage]:
        """The email for one row: from its render process when it was sent to one."""
        future = self._pending.pop(claimed.digest_id, None)
        if future is None:
            return super().__call__(claimed)
        if future.done() and not future.cancelled() and future.exception() is None:
            # The usual case, the children being ahead of the sender: no waiting to set up.
            return self._from_chunk(claimed, future.result().get(claimed.digest_id))
        return self._collect(claimed, future)

    async def _collect(
        self, claimed: ClaimedDigest, future: Future[dict[int, Rendered]]
    ) -> WireMessage:
        try:
            # Shielded: cancelling this send must not cancel the chunk other sends wait for.
            chunk = asyncio.shield(asyncio.wrap_future(future))
            found = (await asyncio.wait_for(chunk, self.TIMEOUT)).get(claimed.digest_id)
        except (Exception, asyncio.CancelledError) as exc:
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and task and task.cancelling():
                raise  # this send was cancelled, not the chunk
            # A child died or hangs, or the pool was shut down under us: render it here.
            log.warning("render process failed on digest %s (%r)", claimed.digest_id, exc)
            found = None
        return self._from_chunk(claimed, found)

    def _from_chunk(self, claimed: ClaimedDigest, found: Rendered | None) -> WireMessage:
        if found is None:  # a child could not load it (e.g. just committed elsewhere): retry here
            return build_digest_message(self.ctx, claimed)
        if found.data is None:
            raise RuntimeError(found.error or "rendering failed")  # as if it had failed here
        # The child made the envelope sender with our key: no signing in the sending process.
        sender = found.sender or self.ctx.envelope_sender_for(claimed.digest_id)
        return WireMessage(found.data, sender, found.crlf_checked)


def _chunk_sizes(total: int, largest: int) -> Iterator[int]:
    """Small chunks first, so the first messages of a batch are ready at once: 5, 10, 20, ..."""
    size, done = 5, 0
    while done < total:
        yield min(size, total - done)
        done += size
        size = min(size * 2, largest)


def digest_messages(ctx: Context) -> DigestMessages:
    """The message builder for a sending run: pooled when settings ask for render processes.

    A context with an injected clock (tests) renders here, so the Date header follows it.
    """
    settings = ctx.settings
    if settings is None or settings.render_processes == 0 or ctx.clock is not utc_now:
        return DigestMessages(ctx)
    pool = RenderPool(settings, settings.render_processes, ctx.render_child_setup)
    return PooledDigestMessages(ctx, pool)


async def send_queued(
    ctx: Context,
    transport: Transport,
    policy: RetryPolicy,
    stop: asyncio.Event | None = None,
    messages: DigestMessages | None = None,
    feed: OutboxFeed | None = None,
) -> DeliveryReport:
    """Send every outbox row that is due now (``messages``: how to build them).

    With a ``feed``, rows a planner commits meanwhile are sent too, until it closes the feed.
    """
    messages = messages or digest_messages(ctx)
    try:
        return await deliver_due(
            ctx.session_factory,
            transport,
            messages,
            policy,
            now=ctx.clock,
            stop=stop,
            prepare=messages.prepare,
            feed=feed,
        )
    finally:
        if isinstance(messages, PooledDigestMessages):
            await asyncio.to_thread(messages.pool.shutdown)
