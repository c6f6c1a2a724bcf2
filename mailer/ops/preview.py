"""``mailer preview``: render the digest a subscriber would get now, storing nothing."""

from __future__ import annotations

from mailer.addresses import normalise_email
from mailer.context import Context
from mailer.db import subscribers as subscriber_repo
from mailer.errors import NotFound
from mailer.models import Digest, Links
from mailer.pipeline.plan import planner
from mailer.rendering import RenderedEmail
from mailer.tokens import Purpose


def preview(ctx: Context, email: str) -> RenderedEmail:
    """The digest ``email`` would receive if it were sent now."""
    address = normalise_email(email)
    with ctx.session_factory() as session:
        row = subscriber_repo.get_row_by_email(session, address)
        due = subscriber_repo.due_subscriber(session, address)
        if row is None or due is None:
            raise NotFound(f"no subscriber {address}")
        plan = planner(ctx).preview(session, due, ctx.clock())
        subscriber = subscriber_repo.to_subscriber(row)
    digest = Digest(
        subscriber=subscriber,
        period=plan.period,
        matches=tuple(plan.matches),
        total_matched=plan.matched_count,
        considered=plan.considered_count,
        message_id=plan.message_id,
    )
    links = Links(
        unsubscribe=ctx.link(Purpose.UNSUBSCRIBE, subscriber.id),
        preferences=ctx.link(Purpose.PREFERENCES, subscriber.id),
        view_online=ctx.link(Purpose.PREFERENCES, subscriber.id),
        unsubscribe_mailto=ctx.unsubscribe_mailto,
        feed=ctx.link(Purpose.FEED, subscriber.id),
    )
    return ctx.renderer.digest(digest, links, date_label=plan.period.label)
