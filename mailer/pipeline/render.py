"""The render stage: a stored outbox row into its email, serialised for SMTP."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from mailer.context import Context
from mailer.db import digests as digest_repo
from mailer.db.digests import StoredDigest
from mailer.delivery import ClaimedDigest, WireMessage
from mailer.errors import NotFound
from mailer.mail.dkim import sign_message
from mailer.mail.message import build_message
from mailer.mail.wire import wire_bytes
from mailer.models import Digest, Links
from mailer.rendering import RenderedEmail
from mailer.tokens import Purpose


def digest_links(
    ctx: Context,
    subscriber_id: int,
    digest_id: int,
    paper_ids: Iterable[int] = (),
    *,
    planned_at: datetime | None = None,
) -> Links:
    """The personal links of one digest, with a vote link pair for each listed paper.

    ``planned_at``: when the digest was planned; its tokens are stamped with that time, so the
    same stored digest always renders the same links (None: stamped now, as for a preview).
    """
    at = int(planned_at.timestamp()) if planned_at is not None else None
    base = f"{ctx.base_url.rstrip('/')}/{Purpose.FEEDBACK.value}/"
    make = ctx.tokens.feedback
    return Links(
        unsubscribe=ctx.link(Purpose.UNSUBSCRIBE, subscriber_id, at=at),
        preferences=ctx.link(Purpose.PREFERENCES, subscriber_id, at=at),
        view_online=ctx.link(Purpose.DIGEST, digest_id, at=at),
        unsubscribe_mailto=ctx.unsubscribe_mailto,
        feed=ctx.link(Purpose.FEED, subscriber_id, at=at),
        feedback={
            paper_id: (
                base + make(subscriber_id, paper_id, "more", at=at),
                base + make(subscriber_id, paper_id, "less", at=at),
            )
            for paper_id in paper_ids
        },
        rate=ctx.link(Purpose.RATE, digest_id, at=at),
    )


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """A stored digest rendered for its subscriber."""

    digest: Digest
    links: Links
    rendered: RenderedEmail
    digest_id: int = 0  # the outbox row: its id signs the envelope sender


def render_stored(ctx: Context, digest_id: int) -> RenderedDigest:
    """Render an outbox row from what it lists; NotFound if there is no such row."""
    with ctx.session_factory() as session:
        stored = digest_repo.load_digest(session, digest_id)
    if stored is None:
        raise NotFound(f"no digest {digest_id}")
    return render_digest(ctx, stored)


def render_digest(ctx: Context, stored: StoredDigest) -> RenderedDigest:
    """Render a loaded outbox row for its subscriber."""
    digest = Digest(
        subscriber=stored.subscriber,
        period=stored.period,
        matches=stored.matches,
        total_matched=stored.matched_count,
        considered=stored.considered_count,
        message_id=stored.message_id,
    )
    paper_ids = [m.paper.id for m in stored.matches if m.paper.id is not None]
    links = digest_links(
        ctx, stored.subscriber.id, stored.id, paper_ids, planned_at=stored.created_at
    )
    rendered = ctx.renderer.digest(digest, links, date_label=stored.period.label)
    return RenderedDigest(digest, links, rendered, stored.id)


def build_digest_message(ctx: Context, claimed: ClaimedDigest) -> WireMessage:
    """The email for a claimed outbox row, rendered from what the row lists."""
    return wire_message(ctx, render_stored(ctx, claimed.digest_id))


def wire_message(ctx: Context, result: RenderedDigest) -> WireMessage:
    """The email of a rendered digest serialised for SMTP, DKIM-signed when configured."""
    message = _unsigned_message(ctx, result)
    sender = ctx.envelope_sender_for(result.digest_id)
    # A non-ASCII address (an internationalised domain or mailbox) goes out raw in UTF-8
    # headers, as SMTPUTF8 expects; encoded words are not allowed inside an address.
    utf8 = not (sender + result.digest.subscriber.email).isascii()
    if ctx.dkim is None:
        data, crlf_checked = wire_bytes(message, utf8=utf8)
        return WireMessage(data, sender, crlf_checked)
    data = sign_message(
        message,
        selector=ctx.dkim.selector,
        domain=ctx.dkim.domain,
        private_key=ctx.dkim.private_key,
        utf8=utf8,
    )
    return WireMessage(data, sender)


def _unsigned_message(ctx: Context, result: RenderedDigest) -> EmailMessage:
    return build_message(
        result.rendered,
        sender=ctx.sender,
        recipient=result.digest.subscriber.email,
        message_id=result.digest.message_id,
        links=result.links,
        list_id=ctx.list_id,
        when=ctx.clock(),
        reply_to=ctx.reply_to,
    )
