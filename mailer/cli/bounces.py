"""``mailer bounces`` (read the bounce mailbox) and ``mailer suppressions list|add|remove``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from mailer.cli import output
from mailer.cli.support import JsonOption, database, load_settings
from mailer.clock import utc_now
from mailer.models import Suppression

if TYPE_CHECKING:
    from mailer.config import Settings
    from mailer.context import Context
    from mailer.subscribers.bounce_mailbox import BounceRun

suppressions_app = typer.Typer(
    help="Addresses that are never mailed again (hard bounces, complaints, yours).",
    no_args_is_help=True,
)


def bounces(
    once: Annotated[
        bool, typer.Option("--once", help="Read the mailbox once and exit (else every interval).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Read the bounce mailbox: apply hard and soft bounces and complaints, skip auto-replies.

    Only reports that carry a digest's signed envelope sender (MAILER_BOUNCE_ADDRESS) change
    a subscriber. Without --once, the mailbox is read every MAILER_BOUNCE_INTERVAL_SECONDS
    until SIGTERM or Ctrl-C (what `mailer worker` does beside sending).
    """
    from mailer.context import make_context
    from mailer.db.session import make_engine, make_session_factory
    from mailer.delivery.inboxes import open_inbox

    settings = load_settings()
    open_inbox(settings).close()  # a configuration error stops here, before any waiting
    ctx = make_context(settings, make_session_factory(make_engine(settings.database_url)))
    if once:
        _summary(_check(ctx, settings), as_json=as_json)
        return
    asyncio.run(_keep_reading(ctx, settings, as_json=as_json))


def _check(ctx: Context, settings: Settings) -> BounceRun:
    from mailer.subscribers.bounce_mailbox import check_mailbox

    return check_mailbox(ctx, settings)


async def _keep_reading(ctx: Context, settings: Settings, *, as_json: bool) -> None:
    from mailer.delivery import stop_on_signals

    with stop_on_signals(asyncio.Event()) as stop:
        while not stop.is_set():
            run = await asyncio.to_thread(_check, ctx, settings)
            if run.read:
                _summary(run, as_json=as_json)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.bounce_interval_seconds)


def _summary(run: BounceRun, *, as_json: bool) -> None:
    counts = run.as_dict()
    if as_json:
        output.emit_json(counts)
        return
    output.table("Bounce mailbox", ["what", "messages"], [(k, v) for k, v in counts.items()])


@suppressions_app.command("list")
def list_(
    reason: Annotated[
        str | None,
        typer.Option(help="Only hard_bounce, complaint, operator or erased entries."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Every suppressed address, oldest first; an erased person shows only a hash."""
    from mailer.subscribers import suppression

    wanted = suppression.parse_reason(reason)
    settings = load_settings()
    with database(settings) as sessions:
        found = suppression.entries(sessions, wanted)
    if as_json:
        output.emit_json([_entry(entry) for entry in found])
        return
    rows = [(_shown(e), e.reason.value, f"{e.created_at:%Y-%m-%d %H:%M}", e.detail) for e in found]
    output.table("Suppressed addresses", ["address", "reason", "since (UTC)", "detail"], rows)


def _shown(entry: Suppression) -> str:
    return entry.email or f"(erased) sha256:{entry.email_hash[:16]}…"


def _entry(entry: Suppression) -> dict[str, object]:
    return {
        "email": entry.email,
        "email_sha256": entry.email_hash,
        "reason": entry.reason.value,
        "since": entry.created_at.isoformat(),
        "detail": entry.detail,
    }


@suppressions_app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="The address never to mail again.")],
    note: Annotated[str | None, typer.Option(help="Why, for whoever reads the list.")] = None,
) -> None:
    """Never mail this address again; a subscriber with it is unsubscribed."""
    from mailer.subscribers import suppression

    settings = load_settings()
    with database(settings) as sessions:
        added = suppression.add(sessions, email, utc_now(), note)
    state = "suppressed" if added.new else "already suppressed"
    stopped = f"; the subscriber ({added.stopped}) is unsubscribed" if added.stopped else ""
    output.say(f"{added.email} {state}{stopped}")


@suppressions_app.command("remove")
def remove(email: Annotated[str, typer.Argument(help="The address to allow again.")]) -> None:
    """Take an address off the list; the person must sign up again to get digests."""
    from mailer.subscribers import suppression

    settings = load_settings()
    with database(settings) as sessions:
        lifted = suppression.remove(sessions, email)
    output.say(f"{lifted.email or email} removed from the suppression list ({lifted.reason.value})")


def register(app: typer.Typer) -> None:
    """Add these commands to the main CLI."""
    app.command("bounces")(bounces)
    app.add_typer(suppressions_app, name="suppressions")
