"""``mailer demo``: the bundled sample, a few example subscribers, one cycle sent at once."""

from __future__ import annotations

from mailer.config import Settings
from mailer.context import Context
from mailer.db import subscribers as subscriber_repo
from mailer.delivery import RetryPolicy, transport_from_settings
from mailer.pipeline.cycle import CycleReport, fetch_now, send_now
from mailer.sources import SAMPLE_PATH
from mailer.subscribers.manage import SubscriberInput, add

SAMPLE_SPEC = f"file:{SAMPLE_PATH}"

EXAMPLE_SUBSCRIBERS = (
    SubscriberInput("ada@example.org", "reinforcement learning, -survey"),
    SubscriberInput("grace@example.org", '"representation learning", contrastive'),
    SubscriberInput("alan@example.org", "language model agents\nbehavior cloning"),
    SubscriberInput("emmy@example.org", "*", frequency="weekly", weekday="monday"),
)


def demo_settings(settings: Settings) -> Settings:
    """The demo polls only the bundled sample (so it works offline), and a newcomer who signs
    up gets a first digest of the sample at once instead of waiting for new papers."""
    return settings.model_copy(update={"sources": SAMPLE_SPEC, "first_digest_backfill": True})


def ensure_examples(ctx: Context) -> int:
    """Add the example subscribers that are missing; how many were added."""
    added = 0
    for example in EXAMPLE_SUBSCRIBERS:
        with ctx.session_factory() as session:
            if subscriber_repo.get_row_by_email(session, example.email) is not None:
                continue
        add(ctx.session_factory, example, confirmed=True, defaults=ctx.defaults, now=ctx.clock())
        added += 1
    return added


async def first_cycle(ctx: Context, settings: Settings) -> CycleReport:
    """Load the sample, add the examples, and send each of them a digest now."""
    report = CycleReport(fetched=await fetch_now(ctx, settings, [SAMPLE_SPEC]))
    ensure_examples(ctx)
    async with transport_from_settings(settings) as transport:
        report.planned, report.delivered = await send_now(
            ctx, transport, RetryPolicy.from_settings(settings), force=True
        )
    return report
