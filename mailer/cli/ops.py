"""Operator questions: ``mailer why``, ``mailer stats``, ``mailer check-health``."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.cli import output
from mailer.cli.support import EXIT_FAILED, JsonOption, database, load_settings, now, parse_day


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
        result = explain(sessions, email, wanted, now())
    output.explanation(result, as_json=as_json)


def stats(
    days: Annotated[int, typer.Option(min=1, max=366, help="Days of fetch history.")] = 14,
    as_json: JsonOption = False,
) -> None:
    """Subscribers by status, papers per source per day, digests by status."""
    from mailer.ops.stats import collect

    settings = load_settings()
    with database(settings) as sessions, sessions() as session:
        result = collect(session, now().date(), days)
    output.stats_report(result, as_json=as_json)


def check_health(as_json: JsonOption = False) -> None:
    """Exit 0 when the database is reachable and migrated to head, else 1 (container checks)."""
    from mailer.ops.health import check

    settings = load_settings()
    checks = check(settings.database_url)
    output.health_report(checks, as_json=as_json)
    if not all(c.ok for c in checks):
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command("why")(why)
    app.command("stats")(stats)
    app.command("check-health")(check_health)
