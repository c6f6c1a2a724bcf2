"""The fetch stage: poll each source, store its papers, record every attempt."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import httpx
from sqlalchemy.exc import SQLAlchemyError

from mailer.config import Settings
from mailer.context import Context
from mailer.db import fetches as fetch_repo
from mailer.db import papers as paper_repo
from mailer.db.fetches import FetchRecord
from mailer.errors import SourceError
from mailer.logs import masked
from mailer.models import FetchOutcome
from mailer.sources import FetchResult, Source, Validators, expected_announcement, make_source
from mailer.sources.base import Limits
from mailer.sources.fields import capped
from mailer.sources.http import HttpPolicy, user_agent_for

log = logging.getLogger(__name__)
MAX_REASON = 500  # characters of a recorded failure reason


def make_sources(settings: Settings, specs: Sequence[str] | None = None) -> list[Source]:
    """The configured sources (or the given specs); SourceSpecError for a bad spec."""
    policy = HttpPolicy(
        user_agent=user_agent_for(settings.base_url),
        deadline=settings.http_deadline,
        limits=Limits(max_bytes=settings.fetch_max_bytes, max_items=settings.fetch_max_items),
    )
    return [
        make_source(
            spec,
            hf_api_url=settings.hf_api_url,
            arxiv_feed_url=settings.arxiv_feed_url,
            policy=policy,
        )
        for spec in (specs if specs is not None else settings.source_specs())
    ]


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """What one source's fetch came to."""

    source: str
    outcome: FetchOutcome
    new: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None
    skip_reasons: tuple[str, ...] = ()


async def fetch_source(
    ctx: Context, source: Source, client: httpx.AsyncClient, day: date, *, catch_up: bool = True
) -> SourceOutcome:
    """Fetch one source (catching up missed days) and store its papers.

    Whatever goes wrong — the source, its payload, storing its papers, a bug — ends this
    source's fetch with a recorded error and one log line; it never reaches the caller, so
    the other sources still run.
    """
    outcomes: list[SourceOutcome] = []
    validators = Validators()
    try:
        validators, since = _state(ctx, source, catch_up)
        async for result in source.fetch_since(client, validators, day, since):
            outcomes.append(_store(ctx, source, result, day))
    except Exception as exc:  # one source's failure must never stop another
        outcomes.append(_failed(ctx, source, exc, day, validators))
    return _combine(source.name, outcomes)


def _state(ctx: Context, source: Source, catch_up: bool) -> tuple[Validators, date | None]:
    """The source's stored validators, and the last day fetched when catching up."""
    with ctx.session_factory() as session:
        state = fetch_repo.source_state(session, source.name)
        validators = Validators(etag=state.etag, last_modified=state.last_modified)
        since = state.last_day if catch_up and state.last_success_at else None
        session.commit()
    return validators, since


def _failed(
    ctx: Context, source: Source, exc: Exception, day: date, validators: Validators
) -> SourceOutcome:
    """Record and log (one line, no traceback) a fetch that failed."""
    reason = failure_reason(source.name, exc)
    log.warning("fetch failed source=%s reason=%s", source.name, reason)
    failed = SourceOutcome(source.name, FetchOutcome.ERROR, error=reason)
    try:
        _record(ctx, failed, day, validators)
    except SQLAlchemyError as problem:  # the database itself is down: the log line must do
        log.error("fetch record not written source=%s: %s", source.name, _first_line(problem))
    return failed


def failure_reason(name: str, exc: Exception) -> str:
    """The one-line reason recorded for a failed fetch: credentials masked, length capped."""
    if isinstance(exc, SourceError):
        text = str(exc)
    elif isinstance(exc, SQLAlchemyError):
        text = f"{name}: the papers could not be stored ({_first_line(exc)})"
    else:
        text = f"{name}: internal error ({type(exc).__name__}: {exc})"
    return capped(masked(" ".join(text.split())), MAX_REASON)


def _first_line(exc: SQLAlchemyError) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0][:200]


def _combine(name: str, outcomes: Sequence[SourceOutcome]) -> SourceOutcome:
    """One line per source: counts summed over the days fetched, the last day's outcome."""
    return SourceOutcome(
        name,
        outcomes[-1].outcome if outcomes else FetchOutcome.EMPTY,
        new=sum(o.new for o in outcomes),
        updated=sum(o.updated for o in outcomes),
        skipped=sum(o.skipped for o in outcomes),
        error=next((o.error for o in reversed(outcomes) if o.error), None),
        skip_reasons=tuple(r for o in outcomes for r in o.skip_reasons),
    )


def _kind(source: Source, result: FetchResult, day: date) -> FetchOutcome:
    if result.not_modified:
        return FetchOutcome.NOT_MODIFIED
    if result.papers:
        return FetchOutcome.OK
    # An empty day the source never publishes on is "no announcement", not a failure.
    if expected_announcement(source.kind, result.day or day):
        return FetchOutcome.EMPTY
    return FetchOutcome.NO_ANNOUNCEMENT


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
