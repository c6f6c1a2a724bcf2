"""``mailer preview``: render the digest a subscriber would get now, storing nothing."""

from __future__ import annotations

from mailer.addresses import normalise_email
from mailer.db import subscribers as subscriber_repo
from mailer.errors import NotFound
from mailer.message import make_message_id
from mailer.models import Digest, Links
from mailer.pipeline import Context, date_label
from mailer.planning import DigestPlanner
from mailer.rendering import RenderedEmail
from mailer.tokens import Purpose


def preview(ctx: Context, email: str) -> RenderedEmail:
    """The digest ``email`` would receive if it were sent now."""
    address = normalise_email(email)
    planner = DigestPlanner(
        ctx.session_factory,
        max_papers=ctx.max_papers,
        new_message_id=lambda: make_message_id(ctx.sender),
    )
    with ctx.session_factory() as session:
        row = subscriber_repo.get_row_by_email(session, address)
        if row is None:
            raise NotFound(f"no subscriber {address}")
        plan = planner.preview(session, row, ctx.clock())
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
    )
    return ctx.renderer.digest(digest, links, date_label=date_label(plan.period))
