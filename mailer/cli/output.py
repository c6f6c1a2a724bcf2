"""CLI output: rich tables on a terminal, plain tab-separated text when piped, JSON on request."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from mailer.models import Subscriber

if TYPE_CHECKING:
    from mailer.db.tables import DigestRow
    from mailer.delivery import DeliveryReport
    from mailer.ops.health import Check
    from mailer.ops.stats import Stats
    from mailer.ops.why import Explanation
    from mailer.pipeline.cycle import CycleReport
    from mailer.pipeline.fetch import SourceOutcome
    from mailer.pipeline.plan import PlanReport
    from mailer.subscribers.importer import ImportReport


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """A line of normal output on stdout."""
    print(message)


def info(message: str) -> None:
    """A line of side information on stderr (keeps stdout clean for pipes)."""
    print(message, file=sys.stderr)


def emit_json(data: Any) -> None:
    """JSON on stdout."""
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def _plain_cell(cell: Any) -> str:
    """A cell on one line: tabs and line breaks (a multi-line profile) would split the row."""
    return "" if cell is None else " ".join(str(cell).replace("\t", " ").splitlines())


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table: boxed on a terminal, tab-separated lines when piped."""
    if not sys.stdout.isatty():
        print("\t".join(headers))
        for row in rows:
            print("\t".join(_plain_cell(cell) for cell in row))
        return
    grid = Table(title=title)
    for header in headers:
        grid.add_column(header)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    _console().print(grid)


def fetch_table(outcomes: Sequence[SourceOutcome]) -> None:
    """The summary of a fetch: one row per source."""
    table(
        "fetch",
        ["source", "outcome", "new", "updated", "skipped", "error"],
        [(o.source, o.outcome, o.new, o.updated, o.skipped, o.error or "") for o in outcomes],
    )
    for outcome in outcomes:
        for reason in outcome.skip_reasons[:20]:
            info(f"skipped in {outcome.source}: {reason}")


def plan_lines(report: PlanReport, *, as_json: bool) -> None:
    """Who would get what (``send --dry-run``)."""
    if as_json:
        emit_json([asdict(line) for line in report.lines])
        return
    rows = [
        (
            line.email,
            line.period,
            "send" if line.status.value == "pending" else f"skip ({line.note})",
            f"{len(line.papers)} of {line.matched} matched / {line.considered}",
            "; ".join(line.papers[:3]) + (" …" if len(line.papers) > 3 else ""),
        )
        for line in report.lines
    ]
    table("due digests", ["email", "period", "action", "papers", "top titles"], rows)
    if not report.lines:
        say("nothing is due")


def send_summary(planned: PlanReport, delivered: DeliveryReport, *, as_json: bool) -> None:
    """What a send did."""
    data = {
        "queued": planned.queued,
        "skipped_no_papers": planned.no_papers,
        "skipped_no_match": planned.no_match,
        "sent": delivered.sent,
        "retry": delivered.retried,
        "failed": delivered.failed,
        "bounced": delivered.bounced,
    }
    if as_json:
        emit_json(data)
        return
    say(" ".join(f"{key}={value}" for key, value in data.items()))


def cycle_summary(report: CycleReport) -> None:
    """What ``run --once`` (or the demo's first cycle) did."""
    fetch_table(report.fetched)
    if report.delivered is not None:
        send_summary(report.planned, report.delivered, as_json=False)


def subscriber_table(subscribers: Sequence[Subscriber], *, as_json: bool) -> None:
    """A list of subscribers."""
    if as_json:
        emit_json([_subscriber_dict(s) for s in subscribers])
        return
    table(
        "subscribers",
        ["email", "status", "frequency", "send time", "timezone", "profile"],
        [
            (s.email, s.status.value, s.frequency.value, s.send_time, s.timezone, s.profile)
            for s in subscribers
        ],
    )


def _subscriber_dict(subscriber: Subscriber) -> dict[str, Any]:
    data = asdict(subscriber)
    data["status"] = subscriber.status.value
    data["frequency"] = subscriber.frequency.value
    return data


def subscriber_detail(
    subscriber: Subscriber, recent: Sequence[DigestRow], *, as_json: bool
) -> None:
    """One subscriber and their recent digests."""
    digests = [
        {
            "period": row.period,
            "status": row.status,
            "note": row.note,
            "papers": row.paper_count,
            "matched": row.matched_count,
            "considered": row.considered_count,
            "attempts": row.attempts,
            "last_code": row.last_code,
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            "message_id": row.message_id,
        }
        for row in recent
    ]
    if as_json:
        emit_json({**_subscriber_dict(subscriber), "digests": digests})
        return
    for key, value in _subscriber_dict(subscriber).items():
        say(f"{key}: {value}")
    table(
        "recent digests",
        ["period", "status", "papers", "sent at", "message-id"],
        [
            (row.period, row.status + (f" ({row.note})" if row.note else ""),
             row.paper_count, row.sent_at, row.message_id)
            for row in recent
        ],
    )  # fmt: skip


def import_report(report: ImportReport, *, confirmed: bool, as_json: bool) -> None:
    """What an import did: counts on stdout, one line per rejected row on stderr."""
    if as_json:
        emit_json(
            {
                "dry_run": report.dry_run,
                "rows": report.rows,
                "imported": len(report.imported),
                "status": "active" if confirmed else "pending",
                "errors": [{"line": e.line, "message": e.message} for e in report.errors],
                "warnings": report.warnings,
            }
        )
        return
    for warning in report.warnings:
        info(f"warning: {warning}")
    for error in report.errors[:MAX_ERRORS_SHOWN]:
        info(str(error))
    if len(report.errors) > MAX_ERRORS_SHOWN:
        info(f"… and {len(report.errors) - MAX_ERRORS_SHOWN} more rejected rows (see --json)")
    verb = "would import" if report.dry_run else "imported"
    status = "active" if confirmed else "pending confirmation"
    say(
        f"{verb} {len(report.imported)} of {report.rows} rows ({status}); "
        f"{len(report.errors)} rejected"
    )


MAX_ERRORS_SHOWN = 200


def explanation(result: Explanation, *, as_json: bool) -> None:
    """The answer of ``mailer why``."""
    if as_json:
        emit_json(asdict(result))
        return
    say(f"{result.email} on {result.day.isoformat()}: {result.summary}")
    for line in result.details:
        say(f"  {line}")


def stats_report(stats: Stats, *, as_json: bool) -> None:
    """The answer of ``mailer stats``."""
    if as_json:
        emit_json(stats.as_dict())
        return
    table("subscribers", ["subscriber status", "count"], sorted(stats.subscribers.items()))
    table("digests", ["digest status", "count"], sorted(stats.digests.items()))
    table(
        "papers per source per day",
        ["day", "source", "new", "updated", "fetches", "errors", "last outcome"],
        [
            (s.day, s.source, s.new, s.updated, s.fetches, s.errors, s.last_outcome)
            for s in stats.papers
        ],
    )


def health_report(checks: Sequence[Check], *, as_json: bool) -> None:
    """The answer of ``mailer check-health``."""
    if as_json:
        emit_json({c.name: {"ok": c.ok, "detail": c.detail} for c in checks})
        return
    for check in checks:
        say(f"{check.name}: {'ok' if check.ok else 'FAIL'} ({check.detail})")
