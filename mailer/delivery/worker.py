"""deliver_due: claim due outbox rows, send them with bounded concurrency, record each outcome."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import Engine

from mailer.clock import utc_now
from mailer.db.outbox import Claim, ClaimedDigest, Outcome, claim, release, renew
from mailer.db.session import SessionFactory
from mailer.delivery.feed import OutboxFeed
from mailer.delivery.leases import HeldRows
from mailer.delivery.policy import RetryPolicy
from mailer.delivery.recorder import OutcomeWriter
from mailer.delivery.refusal import Refusal, Stage, classify, stage_of
from mailer.delivery.transport import Outgoing, Transport, WireMessage
from mailer.errors import PermanentDeliveryError, TransientDeliveryError
from mailer.models import DigestNote, DigestStatus

log = logging.getLogger(__name__)

BuildMessage = Callable[[ClaimedDigest], Outgoing | Awaitable[Outgoing]]
Prepare = Callable[[Sequence[ClaimedDigest]], None]


@dataclass(slots=True)
class DeliveryReport:
    """What one ``deliver_due`` run did; ``failed`` includes policy rejections."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0  # the subscriber was no longer active
    policy_rejected: int = 0
    released: int = 0  # claimed, then handed back unsent because we were asked to stop
    lost_lease: int = 0  # outcomes not written: another worker had taken the row meanwhile
    claimed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        """Messages this run tried to hand over."""
        return self.sent + self.retried + self.failed + self.bounced

    def count(self, outcome: Outcome) -> None:
        """Add one written outcome."""
        status = outcome.status
        if status is DigestStatus.SENT:
            self.sent += 1
        elif status is DigestStatus.RETRY:
            self.retried += 1
        elif status is DigestStatus.BOUNCED:
            self.bounced += 1
        else:
            self.failed += 1
            self.policy_rejected += outcome.note is DigestNote.POLICY_REJECTION


async def deliver_due(
    session_factory: SessionFactory,
    transport: Transport,
    build_message: BuildMessage,
    policy: RetryPolicy,
    *,
    now: Callable[[], datetime] = utc_now,
    batch_size: int = 100,
    stop: asyncio.Event | None = None,
    concurrency: int | None = None,
    rand: Callable[[], float] = random.random,
    prepare: Prepare | None = None,
    feed: OutboxFeed | None = None,
) -> DeliveryReport:
    """Send every digest due at ``now()``; returns when none is left or ``stop`` is set.

    ``build_message`` is called on the event loop (threads cost more than they save under
    the GIL); its message gets the row's Message-ID, so a retry or a resend after a crash
    reuses it. ``prepare``, when given, is called with each claimed batch (in the claiming
    thread) before its messages are built, so the builder can load the batch at once; if it
    fails, each message is still built on its own. ``concurrency`` defaults to the
    transport's. Outcomes are committed in groups by one recorder task, and a send slot is
    freed only after its outcome is committed. With a ``feed`` (a planner adding rows while
    this runs), an empty claim waits for the feed's next commit and the run ends only once
    the feed is closed and nothing is due.
    """
    width = concurrency or int(getattr(transport, "concurrency", 1))
    run = _Run(session_factory, transport, build_message, policy, now, rand, width, prepare, feed)
    started = time.perf_counter()
    run.start()
    try:
        await run.loop(batch_size, stop or asyncio.Event())
    finally:
        await run.finish()
        run.report.seconds = time.perf_counter() - started
    return run.report


class _Run:
    """The state of one ``deliver_due`` call."""

    def __init__(
        self,
        session_factory: SessionFactory,
        transport: Transport,
        build_message: BuildMessage,
        policy: RetryPolicy,
        now: Callable[[], datetime],
        rand: Callable[[], float],
        width: int,
        prepare: Prepare | None,
        feed: OutboxFeed | None = None,
    ) -> None:
        self.sessions = session_factory
        self.transport = transport
        self.build_message = build_message
        self.policy = policy
        self.now = now
        self.rand = rand
        self.slots = asyncio.Semaphore(max(1, width))
        self.tasks: set[asyncio.Task[None]] = set()
        self.undispatched: list[ClaimedDigest] = []
        self.outcomes: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self.recorder: asyncio.Task[None] | None = None
        self.report = DeliveryReport()
        self.prepare = prepare
        self.leases = HeldRows(policy.lease())
        self.renewing = asyncio.Lock()
        self.renewer: asyncio.Task[None] | None = None
        # Outcomes are written on a Core connection (see outbox.record): the factory's engine.
        engine: Engine = session_factory.kw["bind"]
        self.writer = OutcomeWriter(engine, now, policy.bounce_limit)
        self.next_claim: asyncio.Task[Claim] | None = None
        self.handed_back = False
        self.feed = feed
        self.claim_saw = 0  # the feed's generation when the pending claim started

    def start(self) -> None:
        """Start the tasks that write outcomes and keep leases fresh."""
        self.recorder = asyncio.create_task(self._record_loop())
        self.renewer = asyncio.create_task(self._renew_loop())

    async def loop(self, batch_size: int, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.next_claim is None:
                self._claim_next(batch_size)
            assert self.next_claim is not None
            # Shielded: if this run is cancelled, finish() still gets the claimed rows back.
            batch = await asyncio.shield(self.next_claim)
            self.next_claim = None
            if not self._take(batch):
                if self.handed_back:  # that claim ran before rows were handed back: look again
                    self.handed_back = False
                    continue
                if self.feed is not None and await self.feed.more_since(self.claim_saw, stop):
                    continue  # the planner committed rows since that claim looked
                return
            if not await self._dispatch(stop, batch_size):
                return

    def _claim_next(self, batch_size: int) -> None:
        """Claim the next batch in the background (its messages are prepared meanwhile)."""
        moment = self.now()
        # Read before the claim's query: a commit after this point is seen by a later claim.
        self.claim_saw = self.feed.generation if self.feed is not None else 0
        claiming = self._claim_and_hold(moment, moment + self.policy.lease(), batch_size)
        self.next_claim = asyncio.create_task(claiming)

    async def _claim_and_hold(self, moment: datetime, lease_until: datetime, limit: int) -> Claim:
        """Claim a batch in a thread, then hold its rows: renewed from then on, until written.

        The rows are held in the step that finishes the task, so whoever sees the claim done
        sees them held. A done callback ran one loop iteration later: a dispatch loop woken in
        between took the batch (awaiting a done task does not yield), found its first row not
        held, read that as a lease lost and handed the batch back to be claimed again.
        """
        batch = await asyncio.to_thread(self._claim, moment, lease_until, limit)
        self.leases.hold(batch.digests, lease_until)
        return batch

    def _take(self, batch: Claim) -> bool:
        """Queue a claimed batch's rows for sending; False when there was nothing to claim."""
        self.report.claimed += len(batch.digests)
        self.report.skipped += batch.skipped
        self.undispatched.extend(batch.digests)
        return bool(batch.digests or batch.skipped)

    async def _dispatch(self, stop: asyncio.Event, batch_size: int) -> bool:
        """Start a send for each row of the batch; False when asked to stop.

        Once half the batch is under way the next one is claimed, so that its messages are
        being prepared (by render processes, when there are some) before they are needed.
        """
        while self.undispatched:
            if stop.is_set():
                return False
            if self.next_claim is None and len(self.undispatched) <= batch_size // 2:
                self._claim_next(batch_size)
            await self.slots.acquire()
            if stop.is_set():
                self.slots.release()
                return False
            await self._keep_leases()
            if not self.undispatched:  # the renewal found the rest taken over
                self.slots.release()
                break
            if self.leases.too_short(self.undispatched[0].digest_id, self.now()):
                # The lease could not be renewed: hand the rest back rather than risk a
                # second worker sending them too.
                self.slots.release()
                await self._release_undispatched()
                self.handed_back = True
                return True
            task = asyncio.create_task(self._one(self.undispatched.pop(0)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return True

    async def finish(self) -> None:
        """Hand back rows never started, then wait for the sends in flight."""
        try:
            await self._take_claimed_ahead()
        finally:
            try:
                await self._release_undispatched()
                if self.tasks:
                    await asyncio.gather(*self.tasks, return_exceptions=True)
            finally:
                await self._stop_background()

    async def _take_claimed_ahead(self) -> None:
        """A batch claimed ahead and never started joins the rows to hand back."""
        claimed, self.next_claim = self.next_claim, None
        if claimed is None:
            return
        try:
            self._take(await claimed)
        except Exception:
            log.exception("claiming the next batch failed")

    async def _stop_background(self) -> None:
        if self.renewer is not None:
            self.renewer.cancel()
            await asyncio.gather(self.renewer, return_exceptions=True)
        try:
            if self.recorder is not None:
                self.outcomes.put_nowait(None)
                await self.recorder
        finally:
            await self.writer.aclose()

    async def _release_undispatched(self) -> None:
        if not self.undispatched:
            return
        rows, self.undispatched = self.undispatched, []
        for row in rows:
            self.leases.drop(row.digest_id)
        try:
            self.report.released += await asyncio.to_thread(self._release, rows)
        except Exception:  # they stay leased; their lease runs out and anyone may take them
            log.exception("could not release %d unsent digests", len(rows))

    async def _keep_leases(self) -> None:
        """Extend the leases of held rows once half the earliest has passed (see leases.py)."""
        if not self.leases.renew_due(self.now()):
            return
        async with self.renewing:
            if not self.leases.renew_due(self.now()):
                return  # renewed while we waited for the lock
            rows = self.leases.snapshot()
            until = self.now() + self.policy.lease()
            try:
                kept = await asyncio.to_thread(self._renew, rows, until)
            except Exception:  # leases run on; too_short() stops new sends in time
                log.exception("could not renew the lease on %d digests", len(rows))
                return
            lost = self.leases.renewed(rows, kept, until)
            before = len(self.undispatched)
            self.undispatched = [d for d in self.undispatched if d.digest_id not in lost]
            if len(self.undispatched) < before:
                dropped = before - len(self.undispatched)
                log.warning("%d claimed digests were taken over by another worker", dropped)
                self.report.lost_lease += dropped

    async def _renew_loop(self) -> None:
        """Renew leases while every send slot is busy (the dispatch loop renews too)."""
        pause = min(30.0, self.policy.lease_seconds / 4)
        while True:
            await asyncio.sleep(pause)
            await self._keep_leases()

    def _renew(self, rows: list[ClaimedDigest], until: datetime) -> set[int]:
        with self.sessions() as session:
            return renew(session, rows, until)

    def _claim(self, moment: datetime, lease_until: datetime, limit: int) -> Claim:
        with self.sessions() as session:
            batch = claim(session, moment, lease_until, limit)
        if batch.digests and self.prepare is not None:
            try:
                self.prepare(batch.digests)
            except Exception:  # each message is then built (and fails, if it must) on its own
                log.exception("could not prepare %d claimed digests", len(batch.digests))
        return batch

    def _release(self, rows: list[ClaimedDigest]) -> int:
        with self.sessions() as session:
            return release(session, rows)

    async def _one(self, digest: ClaimedDigest) -> None:
        try:
            outcome = await self._attempt(digest)
        except BaseException:
            self.slots.release()
            raise
        # The slot is freed only once the outcome is committed: at most ``width`` messages
        # are ever sent but unrecorded, which bounds the duplicates a hard kill can cause.
        self.outcomes.put_nowait(outcome)

    async def _record_loop(self) -> None:
        """Commit outcomes in groups: whatever piled up while the last commit ran."""
        closing = False
        while not closing:
            batch: list[Outcome] = []
            item = await self.outcomes.get()
            while True:
                if item is None:  # sent by finish() once every send is done
                    closing = True
                    break
                batch.append(item)
                if self.outcomes.empty():
                    break
                item = self.outcomes.get_nowait()
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[Outcome]) -> None:
        try:
            written = await self.writer.write(batch)
        except Exception as exc:  # the rows stay leased; another run takes them over
            log.exception("could not record %d delivery outcomes", len(batch))
            self.report.errors.append(f"recording {len(batch)} outcomes: {exc}")
            written = []
        finally:
            for outcome in batch:
                self.leases.drop(outcome.digest.digest_id)
                self.slots.release()
        for outcome, ok in zip(batch, written, strict=False):
            if ok:
                self.report.count(outcome)
            else:
                self.report.lost_lease += 1

    async def _attempt(self, digest: ClaimedDigest) -> Outcome:
        try:
            message = await self._build(digest)
        except Exception as exc:  # one unrenderable digest must not stop the rest
            log.exception("could not build digest %s", digest.digest_id)
            reason = f"could not build the message: {type(exc).__name__}: {exc}"
            return Outcome(
                digest=digest, status=DigestStatus.FAILED, reply=reason, note=DigestNote.BUILD_ERROR
            )
        try:
            reply = await self.transport.send(message, digest.email)
        except TransientDeliveryError as exc:
            return self._transient(digest, exc)
        except PermanentDeliveryError as exc:
            return self._permanent(digest, exc)
        except Exception as exc:  # a transport bug: treat as temporary, keep the digest
            log.exception("transport failed on digest %s", digest.digest_id)
            return self._transient(digest, TransientDeliveryError(f"{type(exc).__name__}: {exc}"))
        log.debug("sent digest %s", digest.digest_id)
        return Outcome(digest=digest, status=DigestStatus.SENT, code=250, reply=reply)

    async def _build(self, digest: ClaimedDigest) -> Outgoing:
        built = self.build_message(digest)
        message = await built if inspect.isawaitable(built) else built
        if isinstance(message, WireMessage):
            if digest.message_id and digest.message_id.encode() not in message.data:
                raise ValueError(f"built without the row's Message-ID {digest.message_id}")
        else:
            stamp_message_id(message, digest.message_id)
        return message

    def _transient(self, digest: ClaimedDigest, exc: TransientDeliveryError) -> Outcome:
        code = exc.code
        soft = code is not None and 400 <= code < 500 and stage_of(exc) in (Stage.RCPT, Stage.DATA)
        when = self.policy.next_attempt(digest.created_at, digest.attempts, self.now(), self.rand())
        if when is None:
            log.warning("giving up on digest %s: %s", digest.digest_id, _masked(exc, digest))
            reply = f"gave up after {digest.attempts} attempts: {exc}"
            return Outcome(
                digest=digest, status=DigestStatus.FAILED, code=code, reply=reply,
                note=DigestNote.GAVE_UP, soft_bounce=soft,
            )  # fmt: skip
        log.info("digest %s will be retried: %s", digest.digest_id, _masked(exc, digest))
        return Outcome(
            digest=digest, status=DigestStatus.RETRY, code=code, reply=str(exc),
            next_attempt_at=when, soft_bounce=soft,
        )  # fmt: skip

    def _permanent(self, digest: ClaimedDigest, exc: PermanentDeliveryError) -> Outcome:
        kind = classify(exc)
        # Addresses are personal data and never logged: the digest id leads to them (`mailer why`).
        who = f"digest {digest.digest_id} (subscriber {digest.subscriber_id})"
        if kind is Refusal.POLICY:
            log.warning("%s rejected by policy (not a dead mailbox): %s", who, _masked(exc, digest))
            return self._refused(digest, exc, DigestStatus.FAILED, DigestNote.POLICY_REJECTION)
        if kind is Refusal.OTHER:
            log.error("%s refused, not for the recipient's sake: %s", who, _masked(exc, digest))
            return self._refused(digest, exc, DigestStatus.FAILED, DigestNote.REFUSED)
        log.warning("%s bounced: %s", who, _masked(exc, digest))
        return self._refused(digest, exc, DigestStatus.BOUNCED, DigestNote.HARD_BOUNCE)

    @staticmethod
    def _refused(
        digest: ClaimedDigest, exc: PermanentDeliveryError, status: DigestStatus, note: DigestNote
    ) -> Outcome:
        return Outcome(
            digest=digest, status=status, code=exc.code, reply=str(exc), note=note,
            hard_bounce=note is DigestNote.HARD_BOUNCE,
        )  # fmt: skip


def stamp_message_id(message: EmailMessage, message_id: str) -> None:
    """Give the message the outbox row's Message-ID, so every resend reuses it."""
    wanted = message_id if message_id.startswith("<") else f"<{message_id}>"
    if message["Message-ID"] != wanted:
        del message["Message-ID"]
        message["Message-ID"] = wanted


def _masked(exc: Exception, digest: ClaimedDigest) -> str:
    """The server's reply for a log line, without the recipient's address (replies often quote it).

    The full reply stays in the outbox row (``mailer why`` shows it to the operator).
    """
    text = str(exc)
    if not digest.email:
        return text
    return re.sub(re.escape(digest.email), "<recipient>", text, flags=re.IGNORECASE)
