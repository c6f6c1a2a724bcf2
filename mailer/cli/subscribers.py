"""``mailer subscribers ...``: add, list, show, set, pause, resume, unsubscribe, remove, import,
export, rate, seed."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailer.cli import output
from mailer.cli.support import (
    EXIT_FAILED,
    JsonOption,
    database,
    defaults_of,
    load_settings,
    open_for_writing,
    parse_status,
)
from mailer.clock import utc_now
from mailer.config import Settings
from mailer.db.session import SessionFactory
from mailer.errors import InputError
from mailer.subscribers import manage as subscriptions

if TYPE_CHECKING:
    from mailer.db.tables import DigestRow
    from mailer.models import Subscriber
    from mailer.subscribers.importer import ImportReport

app = typer.Typer(help="Manage subscribers.", no_args_is_help=True)

EmailArg = Annotated[str, typer.Argument(help="The subscriber's email address.")]
KeywordsOption = Annotated[
    str | None,
    typer.Option("--keywords", help='Keyword profile, e.g. "diffusion policy, -survey".'),
]
FrequencyOption = Annotated[str | None, typer.Option(help="daily or weekly.")]
TimezoneOption = Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")]
SendTimeOption = Annotated[str | None, typer.Option("--send-time", help="Local time HH:MM.")]
NoEmailOption = Annotated[
    bool,
    typer.Option(
        "--no-email",
        help="Do not send confirmation emails now (pending addresses stay without digests).",
    ),
]
WeekdayOption = Annotated[
    str | None, typer.Option(help="Weekly digests: day of the week (monday … sunday).")
]


@app.command("add")
def add(
    email: EmailArg,
    keywords: KeywordsOption = None,
    confirmed: Annotated[
        bool, typer.Option("--confirmed", help="Active at once (you vouch for consent).")
    ] = False,
    reconsented: Annotated[
        bool,
        typer.Option(
            "--reconsented",
            help="The address unsubscribed or was erased, and the person asked to come back.",
        ),
    ] = False,
    frequency: FrequencyOption = None,
    timezone: TimezoneOption = None,
    send_time: SendTimeOption = None,
    weekday: WeekdayOption = None,
    no_email: NoEmailOption = False,
) -> None:
    """Add a subscriber: pending, with a confirmation email, unless --confirmed."""
    if keywords is None:
        raise InputError('--keywords is required, e.g. --keywords "diffusion policy, -survey"')
    settings = load_settings()
    raw = subscriptions.SubscriberInput(
        email=email, profile=keywords, frequency=frequency or "daily",
        send_time=send_time, timezone=timezone, weekday=weekday,
    )  # fmt: skip
    with database(settings) as sessions:
        added = subscriptions.add(
            sessions, raw, confirmed=confirmed, defaults=defaults_of(settings),
            now=utc_now(), reconsented=reconsented,
        )  # fmt: skip
        output.say(f"added {added.email} ({added.status.value})")
        if not confirmed and not no_email:
            _confirm_by_mail(settings, sessions, [added.email])


def _confirm_by_mail(settings: Settings, sessions: SessionFactory, emails: list[str]) -> None:
    """Send pending addresses their confirmation link (double opt-in for everyone)."""
    from mailer.context import make_context
    from mailer.delivery import transport_from_settings
    from mailer.subscribers import confirmations

    pending = confirmations.awaiting_mail(sessions, emails)
    if not pending:
        return
    ctx = make_context(settings, sessions)

    async def go() -> confirmations.ConfirmationReport:
        async with transport_from_settings(settings) as transport:
            return await confirmations.send_all(ctx, transport, pending, settings.smtp_concurrency)

    report = asyncio.run(go())
    output.info(
        f"sent {report.sent} confirmation emails"
        + (f"; {report.failed} failed (see the log; they stay pending)" if report.failed else "")
    )


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    search: Annotated[str | None, typer.Option(help="Only addresses containing this.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List subscribers."""
    from mailer.db import subscribers as repo

    settings = load_settings()
    wanted = parse_status(status)
    with database(settings) as sessions, sessions() as session:
        rows = list(repo.list_subscribers(session, wanted, search))
    subscriber_table(rows, as_json=as_json)


@app.command("show")
def show(email: EmailArg, as_json: JsonOption = False) -> None:
    """One subscriber's settings and recent digests."""
    from mailer.db import digests as digest_repo

    settings = load_settings()
    with database(settings) as sessions:
        subscriber = subscriptions.get(sessions, email)
        with sessions() as session:
            recent = digest_repo.digests_for(session, subscriber.id)
    subscriber_detail(subscriber, recent, as_json=as_json)


@app.command("set")
def set_(
    email: EmailArg,
    keywords: KeywordsOption = None,
    frequency: FrequencyOption = None,
    weekday: WeekdayOption = None,
    timezone: TimezoneOption = None,
    send_time: SendTimeOption = None,
) -> None:
    """Change a subscriber's profile or schedule (validated like a signup)."""
    changes = subscriptions.Changes(
        profile=keywords, frequency=frequency, weekday=weekday,
        send_time=send_time, timezone=timezone,
    )  # fmt: skip
    if changes == subscriptions.Changes():
        raise InputError(
            "nothing to change: give --keywords, --frequency, --weekday, --timezone or --send-time"
        )
    settings = load_settings()
    with database(settings) as sessions:
        changed = subscriptions.update(sessions, email, changes, utc_now())
    output.say(f"updated {changed.email}")


@app.command("pause")
def pause(email: EmailArg) -> None:
    """Stop sending digests to a subscriber until `resume`."""
    settings = load_settings()
    with database(settings) as sessions:
        paused = subscriptions.pause(sessions, email, utc_now())
    output.say(f"paused {paused.email}")


@app.command("resume")
def resume(email: EmailArg) -> None:
    """Start sending again to a paused subscriber (this period's digest is due)."""
    settings = load_settings()
    with database(settings) as sessions:
        resumed = subscriptions.resume(sessions, email, utc_now())
    output.say(f"resumed {resumed.email}")


@app.command("unsubscribe")
def unsubscribe(email: EmailArg) -> None:
    """Unsubscribe (keeps the record; `remove` erases it)."""
    settings = load_settings()
    with database(settings) as sessions:
        gone = subscriptions.unsubscribe(sessions, email, utc_now())
    output.say(f"unsubscribed {gone.email}")


@app.command("remove")
def remove(
    email: EmailArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a subscriber's personal data and digests; only an anonymous hash is kept.

    The hash stops an import from bringing the address back; only the person can (the
    signup form, or `subscribers add --reconsented`).
    """
    if not yes and not typer.confirm(f"erase everything stored about {email}?"):
        raise typer.Exit(EXIT_FAILED)
    settings = load_settings()
    with database(settings) as sessions:
        erased = subscriptions.remove(sessions, email, utc_now())
    output.say(f"erased {erased}")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV file: email, keywords[, frequency, ...].")],
    confirmed: Annotated[
        bool,
        typer.Option("--confirmed", help="Active at once (you vouch for everyone's consent)."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and report; store nothing.")
    ] = False,
    as_json: JsonOption = False,
    no_email: NoEmailOption = False,
) -> None:
    """Import subscribers from CSV; bad rows are reported by line, valid rows are imported.

    Columns: email, keywords, and optionally frequency, timezone, send_time, weekday; a
    header line is recognised (any order), else that order is assumed. UTF-8 (with or
    without BOM), comma, semicolon or tab separated. Exit 1 when some rows were rejected.
    """
    from mailer.subscribers import importer

    settings = load_settings()
    try:
        stream = file.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from None
    with stream, database(settings) as sessions:
        try:
            report = importer.import_csv(
                sessions, stream, defaults=defaults_of(settings), confirmed=confirmed,
                now=utc_now(), dry_run=dry_run, name=str(file),
                max_record=settings.import_max_record_bytes,
            )  # fmt: skip
        except OSError as exc:  # a directory, a device that fails mid-read
            raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None
        import_report(report, confirmed=confirmed, as_json=as_json)
        if not (confirmed or dry_run or no_email):
            _confirm_by_mail(settings, sessions, [s.email for s in report.imported])
    if report.errors:
        raise typer.Exit(EXIT_FAILED)


@app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    email: Annotated[
        str | None,
        typer.Option(help="Only this person, with every digest sent (a data access request)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write here, not stdout.")] = None,
) -> None:
    """Export subscribers as CSV (spreadsheet-safe) or JSON."""
    from mailer.subscribers import exporter

    if fmt not in ("csv", "json"):
        raise InputError(f"--format must be csv or json, not {fmt!r}")
    settings = load_settings()
    write = exporter.write_json if fmt == "json" else exporter.write_csv
    with (
        database(settings) as sessions,
        sessions() as session,
        contextlib.ExitStack() as stack,
    ):
        # Streamed inside the session: a million subscribers never sit in memory at once.
        if email is not None and fmt == "json":
            rows: Iterable[dict[str, Any]] = [exporter.full_record(session, email)]
        else:
            rows = exporter.records(session, email)
        handle = stack.enter_context(open_for_writing(out)) if out is not None else sys.stdout
        count = write(rows, handle)
    if out is not None:
        output.info(f"wrote {count} subscribers to {out}")


@app.command("rate")
def rate(
    email: EmailArg,
    paper: Annotated[str, typer.Argument(help="arXiv id (2303.04137) or stored paper key.")],
    more: Annotated[bool, typer.Option("--more", help="More like this.")] = False,
    less: Annotated[bool, typer.Option("--less", help="Less like this.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Forget the vote.")] = False,
) -> None:
    """Vote for a subscriber on a stored paper, as their "more / less like this" links do."""
    from mailer.relevance import Vote
    from mailer.subscribers import feedback

    if more + less + clear != 1:
        raise InputError("give exactly one of --more, --less or --clear")
    choice = Vote.MORE if more else Vote.LESS if less else None
    settings = load_settings()
    with database(settings) as sessions:
        voted = feedback.rate(sessions, email, paper, choice, utc_now())
    said = f"{choice.label}" if choice is not None else "no vote"
    output.say(f"{voted.email}: {said} on {voted.paper.key} ({voted.paper.title})")


@app.command("seed")
def seed(
    email: EmailArg,
    file: Annotated[
        Path,
        typer.Argument(help="BibTeX, RIS or CSL-JSON export, or a list of arXiv ids (2 MB max)."),
    ],
) -> None:
    """Add every paper of the subscriber's own library as "more like this" (no network).

    Entries bring their own title and abstract; a list of arXiv ids must name stored papers.
    A file that does not parse changes nothing.
    """
    from mailer.relevance.library import MAX_BYTES
    from mailer.subscribers import feedback

    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror}") from None
    settings = load_settings()
    with database(settings) as sessions:
        report = feedback.seed(sessions, email, data, utc_now())
    output.say(
        f"{report.email}: added {report.added} examples from a {report.format} file"
        + (f", {report.replaced} already there" if report.replaced else "")
        + (f", {report.untitled} entries without a title skipped" if report.untitled else "")
    )


# --- output ----------------------------------------------------------------------------


MAX_ERRORS_SHOWN = 200


def subscriber_table(subscribers: Sequence[Subscriber], *, as_json: bool) -> None:
    """A list of subscribers."""
    if as_json:
        output.emit_json([_subscriber_dict(s) for s in subscribers])
        return
    output.table(
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
        output.emit_json({**_subscriber_dict(subscriber), "digests": digests})
        return
    for key, value in _subscriber_dict(subscriber).items():
        output.say(f"{key}: {value}")
    output.table(
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
        output.emit_json(
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
        output.info(f"warning: {warning}")
    for error in report.errors[:MAX_ERRORS_SHOWN]:
        output.info(str(error))
    if len(report.errors) > MAX_ERRORS_SHOWN:
        output.info(
            f"… and {len(report.errors) - MAX_ERRORS_SHOWN} more rejected rows (see --json)"
        )
    verb = "would import" if report.dry_run else "imported"
    status = "active" if confirmed else "pending confirmation"
    output.say(
        f"{verb} {len(report.imported)} of {report.rows} rows ({status}); "
        f"{len(report.errors)} rejected"
    )
