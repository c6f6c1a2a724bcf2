"""A real web app on a real port with a real SMTP server: shared by the web and browser tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import urlsplit

from mailer.config import Settings
from mailer.context import Context, make_context
from mailer.db.papers import upsert_papers
from mailer.db.session import SessionFactory
from mailer.delivery import SmtpConfig, SmtpTransport
from mailer.models import Paper
from mailer.web.app import create_app
from mailer.web.deps import Limits
from tests.helpers.smtp_server import SmtpServer
from tests.helpers.web_server import WebServer

SECRET = "web-test-secret-0123456789abcdef"
START = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)

PAPERS = (
    Paper(
        key="arxiv:2611.00001",
        arxiv_id="2611.00001",
        title="Diffusion Policy for Visuomotor Control",
        abstract="We learn a diffusion policy that denoises robot actions from camera images.",
        authors=("Cheng Chi", "Shuran Song"),
        categories=("cs.RO",),
        url="https://arxiv.org/abs/2611.00001",
        source="test",
    ),
    Paper(
        key="arxiv:2611.00002",
        arxiv_id="2611.00002",
        title="A Survey of World Models",
        abstract="World models predict the future. We survey learned world models for agents.",
        authors=("Ada Lovelace",),
        categories=("cs.LG",),
        url="https://arxiv.org/abs/2611.00002",
        source="test",
    ),
    Paper(
        key="arxiv:2611.00003",
        arxiv_id="2611.00003",
        title="Scaling Language Model Agents",
        abstract="Language model agents plan with tools; we scale them to thousands of tasks.",
        authors=("Grace Hopper", "Alan Turing"),
        categories=("cs.CL",),
        url="https://arxiv.org/abs/2611.00003",
        source="test",
    ),
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


@dataclass
class Harness:
    """The app's context, its clock, the running web server and the SMTP server it mails."""

    ctx: Context
    clock: Clock
    server: WebServer
    smtp: SmtpServer

    def url(self, path: str = "/") -> str:
        """An absolute URL on the running app."""
        return self.server.url(path)


def make_ctx(session_factory: SessionFactory, clock: Clock, *, demo: bool = False) -> Context:
    """A pipeline context with a fixed secret and the given clock (demo: first digests backfill)."""
    settings = Settings(
        secret_key=SECRET, base_url="http://mailer.test", first_digest_backfill=demo
    )
    return make_context(settings, session_factory, clock=clock)


def seed_papers(ctx: Context, papers: tuple[Paper, ...] = PAPERS) -> None:
    """Store papers first seen two hours before the clock's now (inside every window)."""
    with ctx.session_factory.begin() as session:
        upsert_papers(session, list(papers), ctx.clock() - timedelta(hours=2))


def smtp_transport(smtp: SmtpServer) -> SmtpTransport:
    """A transport to the test SMTP server."""
    return SmtpTransport(SmtpConfig(host=smtp.host, port=smtp.port, security="none", timeout=10))


@contextmanager
def running_app(
    session_factory: SessionFactory,
    *,
    limits: Limits | None = None,
    demo: bool = False,
    cache_seconds: float = 60.0,
) -> Iterator[Harness]:
    """The web app with papers seeded, mailing through a real local SMTP server."""
    clock = Clock()
    ctx = make_ctx(session_factory, clock, demo=demo)
    seed_papers(ctx)
    with SmtpServer() as smtp:
        app = create_app(
            ctx,
            transport_factory=lambda: smtp_transport(smtp),
            demo=demo,
            secret_key=SECRET,
            limits=limits or Limits(signups_per_ip=1000, previews_per_ip=1000),
            cache_seconds=cache_seconds,
        )
        with WebServer(app) as server:
            yield Harness(ctx, clock, server, smtp)


def link_path(message: EmailMessage, kind: str) -> str:
    """The path of the first ``/<kind>/<token>`` link in a message's text part."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    found = re.search(rf"https?://\S+/{kind}/\S+", part.get_content())
    assert found, f"no {kind} link in the message"
    return urlsplit(found.group(0)).path
