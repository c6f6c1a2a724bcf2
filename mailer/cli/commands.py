"""The admin CLI: ``mailer --help`` lists every command; errors are one line on stderr."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

# Typer >= 0.24 vendors click: its usage errors are not click's own classes.
from typer._click.exceptions import ClickException as TyperClickException

from mailer import logs
from mailer.cli import bounces as cli_bounces
from mailer.cli import ops as cli_ops
from mailer.cli import output
from mailer.cli.subscribers import app as subscribers_app
from mailer.cli.support import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_INPUT,
    JsonOption,
    load_settings,
    open_for_writing,
    parse_day,
    parse_instant,
    reload_logging,
)
from mailer.config import Settings, get_settings
from mailer.context import Context, make_context
from mailer.daemon import tuning
from mailer.db.migrate import current_revision, head_revision, upgrade
from mailer.db.session import SessionFactory, make_engine, make_session_factory
from mailer.errors import ConfigError, InputError, MailerError
from mailer.models import FetchOutcome

if TYPE_CHECKING:
    from mailer.delivery import DeliveryReport
    from mailer.pipeline.cycle import CycleReport
    from mailer.pipeline.fetch import SourceOutcome
    from mailer.pipeline.plan import PlanReport

log = logging.getLogger("mailer.cli")

app = typer.Typer(
    help="mailer: a personal digest of new research papers, by email.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(subscribers_app, name="subscribers")
__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_INPUT", "app", "main"]


def main() -> None:
    """Console-script entry point: run the CLI, turning expected errors into one line."""
    try:
        # The program is named, not guessed from sys.argv: click would otherwise call itself
        # `python -m mailer` (or a test runner's name) in every usage line and help page.
        result = app(prog_name="mailer", standalone_mode=False)
    except (click.ClickException, TyperClickException) as exc:  # usage errors: one line
        _fail(_usage_problem(exc), exc.exit_code)
    except (click.Abort, typer.Abort):
        _fail("aborted", EXIT_FAILED)
    except KeyboardInterrupt:
        sys.exit(130)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        _fail(f"configuration error: MAILER_{where.upper()}: {first['msg']}", EXIT_CONFIG)
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", EXIT_CONFIG)
    except InputError as exc:
        _fail(str(exc), EXIT_INPUT)
    except MailerError as exc:
        _fail(str(exc), EXIT_FAILED)
    except SQLAlchemyError as exc:
        _fail(_database_problem(exc), EXIT_FAILED)
    except OSError as exc:  # a file that cannot be written or read, a full disk
        _fail(_os_problem(exc), EXIT_FAILED)
    sys.exit(result if isinstance(result, int) else 0)


def _usage_problem(exc: click.ClickException | TyperClickException) -> str:
    """A usage error as one line naming the command's help, not click's three-line block."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    context = getattr(exc, "ctx", None)
    if context is None:
        return message
    return f"{message} (see `{context.command_path} --help`)"


def _database_problem(exc: SQLAlchemyError) -> str:
    """One line about a database failure, without the SQL and without a password."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    try:
        password = logs.url_password(get_settings().database_url)
    except ValidationError:
        password = None
    if password:
        reason = reason.replace(password, logs.MASK)
    hint = (
        " (run `mailer db upgrade`)"
        if "no such table" in reason or "does not exist" in reason
        else ""
    )
    return f"database error: {reason}{hint}"


def _os_problem(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return f"{exc.filename}: {reason}" if exc.filename else reason


def _fail(message: str, code: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _settings() -> Settings:
    return load_settings()


def _daemon_settings() -> Settings:
    """Settings for long-running commands: SIGHUP re-reads the logging settings."""
    settings = load_settings()
    logs.install_sighup(reload_logging)
    return settings


def _context(settings: Settings, migrate: bool = False, *, ranks: bool = True) -> Context:
    """The context; for commands that plan (``ranks``), the learned ranking's model is loaded
    here, once, so a bad MAILER_RELEVANCE_MODEL stops the command at startup (exit 3)."""
    ctx = make_context(settings, _sessions(settings), render_child_setup=tuning.render_child_setup)
    if ranks:
        from mailer.pipeline.learning import store_spaces

        store_spaces(ctx.relevance_model)
    if migrate:
        upgrade(settings.database_url)
    return ctx


def _sessions(settings: Settings) -> SessionFactory:
    return make_session_factory(make_engine(settings.database_url))


_parse_day, _parse_instant = parse_day, parse_instant


def _run(coro_factory: Callable[[], Any]) -> Any:
    return asyncio.run(coro_factory())


def _run_tuned(coro_factory: Callable[[], Any]) -> Any:
    """A planning or sending run under the runtime's process tuning (``daemon.tuning``)."""
    with tuning.tuned():
        return _run(coro_factory)


def _run_stoppable(coro_factory: Callable[[asyncio.Event], Any]) -> Any:
    """Run a sending command whose stop event SIGTERM and Ctrl-C set: messages in flight
    finish, the rest go back to the queue, and the command exits 0."""
    from mailer.delivery import stop_on_signals

    async def go() -> Any:
        with stop_on_signals(asyncio.Event()) as stop:
            return await coro_factory(stop)

    with tuning.tuned():
        return asyncio.run(go())


# --- database -----------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = _settings()
    upgrade(settings.database_url)
    output.say(f"database at revision {_current(settings.database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the newest one available."""
    settings = _settings()
    current = _current(settings.database_url)
    head = head_revision(settings.database_url)
    state = "up to date" if current == head else "needs `mailer db upgrade`"
    output.say(f"current: {current or 'empty'}  head: {head}  ({state})")


def _current(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


# --- running --------------------------------------------------------------------------------


HostOption = Annotated[str | None, typer.Option(help="Listen address (MAILER_WEB_HOST).")]
PortOption = Annotated[int | None, typer.Option(help="Listen port (MAILER_WEB_PORT).")]


@app.command()
def run(
    once: Annotated[
        bool, typer.Option("--once", help="One cycle: fetch, send what is due, exit.")
    ] = False,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """The daemon: scheduler and web server (migrates the database first)."""
    from mailer.daemon import run as daemon
    from mailer.pipeline import cycle

    settings = _daemon_settings()
    ctx = _context(settings, migrate=True)
    _announce_transport(settings)
    if once:
        report = _run_stoppable(lambda stop: cycle.run_cycle(ctx, settings, stop=stop))
        cycle_summary(report)
        return
    _run(
        lambda: daemon.serve(
            ctx, settings, scheduler=True, web=True,
            host=host or settings.web_host, port=port or settings.web_port,
        )
    )  # fmt: skip


WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=1, max=64, help="Web server processes (MAILER_WEB_WORKERS); about one per core."
    ),
]


@app.command()
def web(host: HostOption = None, port: PortOption = None, workers: WorkersOption = None) -> None:
    """Only the web server (signup, papers pages, feeds, confirm, unsubscribe, health)."""
    from mailer.daemon import run as daemon

    settings = _daemon_settings()
    bind_host, bind_port = host or settings.web_host, port or settings.web_port
    processes = workers or settings.web_workers
    if processes > 1:
        from mailer.daemon.web_processes import serve_processes

        _context(settings, ranks=False)  # fail early, in one place, on a bad configuration
        code = serve_processes(settings, host=bind_host, port=bind_port, workers=processes)
        raise typer.Exit(code)
    ctx = _context(settings, ranks=False)  # the web's taste summaries are TF-IDF's words
    _run(
        lambda: daemon.serve(
            ctx, settings, scheduler=False, web=True, host=bind_host, port=bind_port
        )
    )  # fmt: skip


@app.command()
def worker() -> None:
    """Only the scheduler: fetch, send due digests, read bounces (scale out on PostgreSQL)."""
    from mailer.daemon import run as daemon

    settings = _daemon_settings()
    ctx = _context(settings)
    _announce_transport(settings)
    _run(lambda: daemon.serve(ctx, settings, scheduler=True, web=False, host="", port=0))


@app.command()
def demo(host: HostOption = None, port: PortOption = None) -> None:
    """Newcomer's tour: load the bundled sample and example subscribers, send, keep running."""
    from mailer.daemon import run as daemon
    from mailer.ops import demo as demo_module

    settings = demo_module.demo_settings(_daemon_settings())
    ctx = _context(settings, migrate=True)
    _announce_transport(settings)
    report = _run_tuned(lambda: demo_module.first_cycle(ctx, settings))
    cycle_summary(report)
    bind_host, bind_port = host or settings.web_host, port or settings.web_port
    output.say(f"demo running: open http://{bind_host}:{bind_port}  (Ctrl-C to stop)")
    _run(
        lambda: daemon.serve(
            ctx, settings, scheduler=True, web=True, host=bind_host, port=bind_port, demo=True
        )
    )


def _announce_transport(settings: Settings) -> None:
    # A log line, not a print: in JSON-log deployments every stderr line must be JSON.
    if settings.smtp_host:
        log.info("mail goes to SMTP server %s:%d", settings.smtp_host, settings.smtp_port)
    else:
        log.info(
            "no MAILER_SMTP_HOST set: mail is delivered into the Maildir %s",
            Path(settings.outbox_dir).resolve(),
        )


@app.command()
def fetch(
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="A source spec (repeatable); default: MAILER_SOURCES."),
    ] = None,
    day: Annotated[str | None, typer.Option("--date", help="Announcement day YYYY-MM-DD.")] = None,
) -> None:
    """Poll sources now and store their papers."""
    from mailer.pipeline import cycle

    settings = _settings()
    ctx = _context(settings, ranks=False)
    wanted = _parse_day(day)
    outcomes = _run(lambda: cycle.fetch_now(ctx, settings, source or None, wanted))
    for outcome in outcomes:
        log.info(
            "fetched source=%s outcome=%s new=%d updated=%d skipped=%d%s",
            outcome.source, outcome.outcome, outcome.new, outcome.updated, outcome.skipped,
            f" error={outcome.error!r}" if outcome.error else "",
        )  # fmt: skip
    fetch_table(outcomes)
    if outcomes and all(o.outcome is FetchOutcome.ERROR for o in outcomes):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def send(
    now: Annotated[
        bool, typer.Option("--now", help="Treat every active subscriber as due.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show who would get what; send nothing.")
    ] = False,
    at: Annotated[
        str | None, typer.Option("--at", help="Evaluate what is due at this ISO time.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send the digests that are due."""
    from mailer.delivery import RetryPolicy, transport_from_settings
    from mailer.pipeline import cycle, plan

    settings = _settings()
    ctx = _context(settings)
    instant = _parse_instant(at)
    if dry_run:
        with tuning.tuned():
            report = plan.plan(ctx, force=now, dry_run=True, at=instant)
        plan_lines(report, as_json=as_json)
        return
    if instant is not None:
        raise InputError("--at only works with --dry-run (sending happens now)")
    _announce_transport(settings)

    async def go(stop: asyncio.Event) -> Any:
        async with transport_from_settings(settings) as transport:
            return await cycle.send_now(
                ctx, transport, RetryPolicy.from_settings(settings), force=now, stop=stop
            )

    planned, delivered = _run_stoppable(go)
    log.info(
        "due digests planned=%d sent=%d retried=%d failed=%d bounced=%d",
        planned.queued, delivered.sent, delivered.retried, delivered.failed, delivered.bounced,
    )  # fmt: skip
    send_summary(planned, delivered, as_json=as_json)


@app.command()
def preview(
    email: str,
    out: Annotated[Path | None, typer.Option("--out", help="Write the HTML here.")] = None,
    text: Annotated[bool, typer.Option("--text", help="Print the plain-text part.")] = False,
) -> None:
    """The digest this subscriber would get now (nothing is stored or sent)."""
    from mailer.ops import preview as previews

    settings = _settings()
    ctx = _context(settings)
    rendered = previews.preview(ctx, email)
    if out is not None:
        with open_for_writing(out) as handle:
            handle.write(rendered.html)
        output.say(f"wrote {out} ({len(rendered.html.encode()) // 1024} KB): {rendered.subject}")
    if text or out is None:
        output.say(rendered.text)


cli_ops.register(app)  # after the core commands, so --help lists those first
cli_bounces.register(app)


# --- output ----------------------------------------------------------------------------


def fetch_table(outcomes: Sequence[SourceOutcome]) -> None:
    """The summary of a fetch: one row per source."""
    output.table(
        "fetch",
        ["source", "outcome", "new", "updated", "skipped", "error"],
        [(o.source, o.outcome, o.new, o.updated, o.skipped, o.error or "") for o in outcomes],
    )
    for outcome in outcomes:
        for reason in outcome.skip_reasons[:20]:
            output.info(f"skipped in {outcome.source}: {reason}")


def plan_lines(report: PlanReport, *, as_json: bool) -> None:
    """Who would get what (``send --dry-run``)."""
    if as_json:
        output.emit_json([asdict(line) for line in report.lines])
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
    output.table("due digests", ["email", "period", "action", "papers", "top titles"], rows)
    if not report.lines:
        output.say("nothing is due")


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
        output.emit_json(data)
        return
    output.say(" ".join(f"{key}={value}" for key, value in data.items()))


def cycle_summary(report: CycleReport) -> None:
    """What ``run --once`` (or the demo's first cycle) did."""
    fetch_table(report.fetched)
    if report.delivered is not None:
        send_summary(report.planned, report.delivered, as_json=False)
