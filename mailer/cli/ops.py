"""Operator questions and upkeep: ``mailer why``, ``stats``, ``check-health``, ``prune``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from mailer.cli import output
from mailer.cli.support import EXIT_FAILED, JsonOption, database, load_settings, parse_day
from mailer.clock import utc_now

if TYPE_CHECKING:
    from mailer.ops.health import Check
    from mailer.ops.prune import PruneReport
    from mailer.ops.stats import Stats
    from mailer.ops.why import Explanation


def why(
    email: Annotated[str, typer.Argument(help="The subscriber's email address.")],
    day: Annotated[
        str | None,
        typer.Option("--date", help="The day YYYY-MM-DD (default: today, subscriber's time)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Explain a day's outcome for one subscriber: sent, skipped, bounced, not due, paused…"""
    from mailer.ops.why import explain

    settings = load_settings()
    wanted = parse_day(day)
    with database(settings) as sessions:
        result = explain(sessions, email, wanted, utc_now())
    explanation(result, as_json=as_json)


def stats(
    days: Annotated[
        int, typer.Option(min=1, max=366, help="Days of fetch and bounce history.")
    ] = 14,
    as_json: JsonOption = False,
) -> None:
    """Subscribers and digests by status; papers, bounce and complaint rates per day."""
    from mailer.ops.stats import collect

    settings = load_settings()
    with database(settings) as sessions, sessions() as session:
        result = collect(session, utc_now().date(), days)
    stats_report(result, as_json=as_json)


def check_health(as_json: JsonOption = False) -> None:
    """Exit 0 when the database is reachable and migrated to head, else 1 (container checks)."""
    from mailer.ops.health import check

    settings = load_settings()
    checks = check(settings.database_url)
    health_report(checks, as_json=as_json)
    if not all(c.ok for c in checks):
        raise typer.Exit(EXIT_FAILED)


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete digests, the fetch log and bounce reports older than MAILER_RETENTION_DAYS.

    The worker does it daily. Kept whatever their age: digests not yet sent or given up,
    each subscriber's latest digest, papers, subscribers, votes and the suppression list.
    """
    from mailer.ops.prune import prune as run_prune

    settings = load_settings()
    with database(settings) as sessions:
        report = run_prune(
            sessions, retention_days=settings.retention_days, now=utc_now(), dry_run=dry_run
        )
    prune_report(report, as_json=as_json)


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command("why")(why)
    app.command("stats")(stats)
    app.command("check-health")(check_health)
    app.command("prune")(prune)


# --- output ----------------------------------------------------------------------------


def explanation(result: Explanation, *, as_json: bool) -> None:
    """The answer of ``mailer why``."""
    if as_json:
        output.emit_json(asdict(result))
        return
    output.say(f"{result.email} on {result.day.isoformat()}: {result.summary}")
    for line in result.details:
        output.say(f"  {line}")


def stats_report(stats: Stats, *, as_json: bool) -> None:
    """The answer of ``mailer stats``."""
    if as_json:
        output.emit_json(stats.as_dict())
        return
    output.table("subscribers", ["subscriber status", "count"], sorted(stats.subscribers.items()))
    output.table("digests", ["digest status", "count"], sorted(stats.digests.items()))
    output.table(
        "papers per source per day",
        ["day", "source", "new", "updated", "fetches", "errors", "last outcome"],
        [
            (s.day, s.source, s.new, s.updated, s.fetches, s.errors, s.last_outcome)
            for s in stats.papers
        ],
    )
    output.table(
        "sources",
        ["source", "status", "last attempt", "last success", "last error"],
        [
            (s.name, s.status, s.last_attempt, s.last_success, s.last_error or "")
            for s in stats.sources
        ],
    )
    output.table(
        "bounces and complaints per day (UTC; reports received / digests sent)",
        ["day", "sent", "hard", "soft", "complaints", "bounce rate", "complaint rate"],
        [
            (b.day, b.sent, b.hard, b.soft, b.complaints, _percent(b.bounce_rate),
             _percent(b.complaint_rate))
            for b in stats.bounces
        ],
    )  # fmt: skip


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def health_report(checks: Sequence[Check], *, as_json: bool) -> None:
    """The answer of ``mailer check-health``."""
    if as_json:
        output.emit_json({c.name: {"ok": c.ok, "detail": c.detail} for c in checks})
        return
    for check in checks:
        output.say(f"{check.name}: {'ok' if check.ok else 'FAIL'} ({check.detail})")


def prune_report(report: PruneReport, *, as_json: bool) -> None:
    """The answer of ``mailer prune``."""
    if as_json:
        output.emit_json(report.as_dict())
        return
    verb = "would delete" if report.dry_run else "deleted"
    output.say(
        f"retention {report.retention_days} days: digests, fetch log and bounce reports before"
        f" {report.cutoff.isoformat(timespec='seconds')}"
        + (" (dry run: nothing changed)" if report.dry_run else "")
    )
    output.table(
        verb,
        ["table", verb],
        list(report.per_table().items()),
    )
