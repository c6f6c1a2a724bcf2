"""fetch → store → match → render → enqueue → send: the only module that touches every stage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import httpx

from mailer.config import Settings
from mailer.db import digests as digest_repo
from mailer.db import fetches as fetch_repo
from mailer.db import papers as paper_repo
from mailer.db.digests import StoredDigest
from mailer.db.fetches import FetchRecord
from mailer.db.session import SessionFactory
from mailer.delivery import (
    ClaimedDigest,
    DeliveryReport,
    RetryPolicy,
    Transport,
    WireMessage,
    deliver_due,
    utc_now,
)
from mailer.errors import ConfigError, NotFound, SourceError
from mailer.message import (
    build_message,
    make_message_id,
    parse_address,
    sign_message,
    wire_bytes,
)
from mailer.models import Digest, Links
from mailer.planning import CatchUp, DigestPlanner, PlanOptions, PlanReport
from mailer.render_pool import Rendered, RenderPool
from mailer.rendering import RenderedEmail, Renderer
from mailer.sources import FetchResult, Source, Validators, expected_announcement, make_source
from mailer.sources.http import HttpPolicy, user_agent_for
from mailer.subscriptions import Defaults
from mailer.tokens import Purpose, Tokens

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Context:
    """Everything the stages need, built once at an entry point and passed down."""

    session_factory: SessionFactory
    tokens: Tokens
    renderer: Renderer
    sender: str
    base_url: str
    plan_options: PlanOptions
    defaults: Defaults
    clock: Clock = utc_now
    unsubscribe_mailto: str | None = None
    reply_to: str | None = None
    dkim: DkimKey | None = None
    # Lets the sender start render processes configured like itself (holds secrets: no repr).
    settings: Settings | None = field(default=None, repr=False)

    @property
    def list_id(self) -> str:
        """The List-Id header value, at the From domain."""
        domain = parseaddr(self.sender)[1].rpartition("@")[2] or "localhost"
        return f"Paper digest <digest.{domain}>"

    @property
    def envelope_sender(self) -> str:
        """The bare From address, used as the SMTP envelope sender (MAIL FROM)."""
        return parse_address(self.sender, what="From address").addr_spec

    def link(self, purpose: Purpose, subject: int) -> str:
        """An absolute URL carrying a token for ``purpose``."""
        return f"{self.base_url.rstrip('/')}/{purpose.value}/{self.tokens.make(purpose, subject)}"


@dataclass(frozen=True, slots=True)
class DkimKey:
    """What DKIM signing needs: selector, signing domain and the PEM private key."""

    selector: str
    domain: str
    private_key: bytes


def dkim_from_settings(settings: Settings) -> DkimKey | None:
    """The DKIM key when all three settings are set; ConfigError when only some are."""
    parts = (settings.dkim_selector, settings.dkim_domain, settings.dkim_private_key)
    if not any(parts):
        return None
    if not all(parts):
        raise ConfigError(
            "DKIM needs MAILER_DKIM_SELECTOR, MAILER_DKIM_DOMAIN and MAILER_DKIM_PRIVATE_KEY"
        )
    assert settings.dkim_selector and settings.dkim_domain and settings.dkim_private_key
    key = settings.dkim_private_key.strip()
    if not key.startswith("-----BEGIN"):
        try:
            key = Path(key).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"MAILER_DKIM_PRIVATE_KEY: cannot read {key}: {exc}") from None
    return DkimKey(settings.dkim_selector, settings.dkim_domain, key.encode())


def make_context(
    settings: Settings, session_factory: SessionFactory, clock: Clock = utc_now
) -> Context:
    """Build the pipeline context from settings (raises ConfigError in production if unsafe)."""
    return Context(
        session_factory=session_factory,
        tokens=Tokens(settings.effective_secret_key()),
        renderer=Renderer(),
        sender=settings.effective_from(),
        base_url=settings.base_url,
        plan_options=PlanOptions(
            max_papers=settings.max_papers,
            catch_up=CatchUp(settings.catch_up),
            first_digest_backfill=settings.first_digest_backfill,
        ),
        defaults=Defaults(send_time=settings.default_send_time, timezone=settings.default_timezone),
        clock=clock,
        unsubscribe_mailto=settings.unsubscribe_mailto,
        reply_to=settings.reply_to,
        dkim=dkim_from_settings(settings),
        settings=settings,
    )


def make_sources(settings: Settings, specs: Sequence[str] | None = None) -> list[Source]:
    """The configured sources (or the given specs); SourceSpecError for a bad spec."""
    policy = HttpPolicy(user_agent=user_agent_for(settings.base_url))
    return [
        make_source(
            spec,
            hf_api_url=settings.hf_api_url,
            arxiv_feed_url=settings.arxiv_feed_url,
            policy=policy,
        )
        for spec in (specs if specs is not None else settings.source_specs())
    ]


# --- fetch ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """What one source's fetch came to."""

    source: str
    outcome: str  # ok, empty, no_announcement, not_modified, error
    new: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None
    skip_reasons: tuple[str, ...] = ()


async def fetch_source(
    ctx: Context, source: Source, client: httpx.AsyncClient, day: date, *, catch_up: bool = True
) -> SourceOutcome:
    """Fetch one source (catching up missed days) and store its papers; failures are recorded."""
    with ctx.session_factory() as session:
        state = fetch_repo.source_state(session, source.name)
        validators = Validators(etag=state.etag, last_modified=state.last_modified)
        since = state.last_day if catch_up and state.last_success_at else None
        session.commit()
    outcomes: list[SourceOutcome] = []
    try:
        async for result in source.fetch_since(client, validators, day, since):
            outcomes.append(_store(ctx, source, result, day))
    except SourceError as exc:
        log.warning("fetch failed source=%s reason=%s", source.name, exc)
        failed = SourceOutcome(source.name, "error", error=str(exc))
        _record(ctx, failed, day, validators)
        outcomes.append(failed)
    return _combine(source.name, outcomes)


def _combine(name: str, outcomes: Sequence[SourceOutcome]) -> SourceOutcome:
    """One line per source: counts summed over the days fetched, the last day's outcome."""
    return SourceOutcome(
        name,
        outcomes[-1].outcome if outcomes else "empty",
        new=sum(o.new for o in outcomes),
        updated=sum(o.updated for o in outcomes),
        skipped=sum(o.skipped for o in outcomes),
        error=next((o.error for o in reversed(outcomes) if o.error), None),
        skip_reasons=tuple(r for o in outcomes for r in o.skip_reasons),
    )


def _kind(source: Source, result: FetchResult, day: date) -> str:
    if result.not_modified:
        return "not_modified"
    if result.papers:
        return "ok"
    # An empty day the source never publishes on is "no announcement", not a failure.
    return "empty" if expected_announcement(source.kind, result.day or day) else "no_announcement"


def _store(ctx: Context, source: Source, result: FetchResult, day: date) -> SourceOutcome:
    now = ctx.clock()
    with ctx.session_factory.begin() as session:
        stats = paper_repo.upsert_papers(session, result.papers, now)
    kind = _kind(source, result, day)
    outcome = SourceOutcome(
        source.name,
        kind,
        new=stats.new,
        updated=stats.updated,
        skipped=result.skipped,
        skip_reasons=result.skip_reasons,
    )
    _record(ctx, outcome, result.day or day, result.validators)
    log.info(
        "fetched source=%s day=%s outcome=%s new=%d updated=%d skipped=%d",
        source.name, result.day or day, kind, stats.new, stats.updated, result.skipped,
    )  # fmt: skip
    return outcome


def _record(ctx: Context, outcome: SourceOutcome, day: date, validators: Validators) -> None:
    record = FetchRecord(
        source=outcome.source,
        day=day,
        outcome=outcome.outcome,
        new=outcome.new,
        updated=outcome.updated,
        skipped=outcome.skipped,
        error=outcome.error,
    )
    with ctx.session_factory.begin() as session:
        fetch_repo.record_fetch(
            session, record, ctx.clock(), (validators.etag, validators.last_modified)
        )


async def fetch_all(
    ctx: Context, sources: Sequence[Source], client: httpx.AsyncClient, day: date | None = None
) -> list[SourceOutcome]:
    """Fetch every source in turn; one source failing never stops the others."""
    when = day or ctx.clock().date()
    # An explicit day fetches just that day; the scheduled fetch catches up missed days.
    return [
        await fetch_source(ctx, source, client, when, catch_up=day is None) for source in sources
    ]


# --- plan ---------------------------------------------------------------------------------


def planner(ctx: Context) -> DigestPlanner:
    """A planner configured from the context."""
    return DigestPlanner(
        ctx.session_factory,
        new_message_id=lambda: make_message_id(ctx.sender),
        options=ctx.plan_options,
    )


def plan(
    ctx: Context, *, force: bool = False, dry_run: bool = False, at: datetime | None = None
) -> PlanReport:
    """Write outbox rows for every due subscriber (or only report them when ``dry_run``)."""
    return planner(ctx).run(now=at or ctx.clock(), force=force, dry_run=dry_run)


# --- render and send ------------------------------------------------------------------------


def digest_links(ctx: Context, subscriber_id: int, digest_id: int) -> Links:
    """The personal links of one digest."""
    return Links(
        unsubscribe=ctx.link(Purpose.UNSUBSCRIBE, subscriber_id),
        preferences=ctx.link(Purpose.PREFERENCES, subscriber_id),
        view_online=ctx.link(Purpose.DIGEST, digest_id),
        unsubscribe_mailto=ctx.unsubscribe_mailto,
    )


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """A stored digest rendered for its subscriber."""

    digest: Digest
    links: Links
    rendered: RenderedEmail


def render_stored(ctx: Context, digest_id: int) -> RenderedDigest:
    """Render an outbox row from what it lists; NotFound if there is no such row."""
    with ctx.session_factory() as session:
        stored = digest_repo.load_digest(session, digest_id)
    if stored is None:
        raise NotFound(f"no digest {digest_id}")
    return render_digest(ctx, stored)


def render_digest(ctx: Context, stored: StoredDigest) -> RenderedDigest:
    """Render a loaded outbox row for its subscriber."""
    digest = Digest(
        subscriber=stored.subscriber,
        period=stored.period,
        matches=stored.matches,
        total_matched=stored.matched_count,
        considered=stored.considered_count,
        message_id=stored.message_id,
    )
    links = digest_links(ctx, stored.subscriber.id, stored.id)
    rendered = ctx.renderer.digest(digest, links, date_label=date_label(stored.period))
    return RenderedDigest(digest, links, rendered)


def date_label(period: str) -> str:
    """A human label for a period key: ``Sun 22 Nov 2026`` or ``week 47, 2026``."""
    if "-W" in period:
        year, week = period.split("-W")
        return f"week {int(week)}, {year}"
    day = date.fromisoformat(period)
    return f"{day:%a} {day.day} {day:%b %Y}"


def build_digest_message(ctx: Context, claimed: ClaimedDigest) -> WireMessage:
    """The email for a claimed outbox row, rendered from what the row lists."""
    return wire_message(ctx, render_stored(ctx, claimed.digest_id))


def wire_message(ctx: Context, result: RenderedDigest) -> WireMessage:
    """The email of a rendered digest serialised for SMTP, DKIM-signed when configured."""
    message = _unsigned_message(ctx, result)
    # A non-ASCII address (an internationalised domain or mailbox) goes out raw in UTF-8
    # headers, as SMTPUTF8 expects; encoded words are not allowed inside an address.
    utf8 = not (ctx.envelope_sender + result.digest.subscriber.email).isascii()
    if ctx.dkim is None:
        data, crlf_checked = wire_bytes(message, utf8=utf8)
        return WireMessage(data, ctx.envelope_sender, crlf_checked)
    data = sign_message(
        message,
        selector=ctx.dkim.selector,
        domain=ctx.dkim.domain,
        private_key=ctx.dkim.private_key,
        utf8=utf8,
    )
    return WireMessage(data, ctx.envelope_sender)


def _unsigned_message(ctx: Context, result: RenderedDigest) -> EmailMessage:
    return build_message(
        result.rendered,
        sender=ctx.sender,
        recipient=result.digest.subscriber.email,
        message_id=result.digest.message_id,
        links=result.links,
        list_id=ctx.list_id,
        when=ctx.clock(),
        reply_to=ctx.reply_to,
    )


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
    child while earlier messages are being sent; smaller batches (and any row the pool could
    not render because it broke) are rendered here.
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
        # The child's envelope sender is the same as ours.
        return WireMessage(found.data, self.ctx.envelope_sender, found.crlf_checked)


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
    return PooledDigestMessages(ctx, RenderPool(settings, settings.render_processes))


async def send_queued(
    ctx: Context,
    transport: Transport,
    policy: RetryPolicy,
    stop: asyncio.Event | None = None,
    messages: DigestMessages | None = None,
) -> DeliveryReport:
    """Send every outbox row that is due now (``messages``: how to build them)."""
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
        )
    finally:
        if isinstance(messages, PooledDigestMessages):
            await asyncio.to_thread(messages.pool.shutdown)
