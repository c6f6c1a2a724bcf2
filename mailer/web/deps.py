"""What the route modules share: the pipeline context, page renderer, CSRF, throttles, mail."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from mailer.context import Context
from mailer.subscribers.signup import TransportFactory
from mailer.web.catalog import Catalog
from mailer.web.csrf import Csrf
from mailer.web.page_cache import PageCache
from mailer.web.pages import Pages
from mailer.web.preview import RecentPapers
from mailer.web.signup_page import BlankForm
from mailer.web.throttle import Throttle


@dataclass(frozen=True)
class Limits:
    """Abuse limits of the web app (per process)."""

    signups_per_ip: int = 10
    signup_window_seconds: float = 600.0
    previews_per_ip: int = 120
    preview_window_seconds: float = 60.0
    max_body_bytes: int = 64 * 1024
    max_upload_bytes: int = 2 * 1024 * 1024 + 64 * 1024  # a library file and its form


@dataclass
class Web:
    """Everything a route needs, built once by ``create_app``."""

    ctx: Context
    pages: Pages
    csrf: Csrf
    recent: RecentPapers
    transport_factory: TransportFactory | None
    limits: Limits
    catalog: Catalog
    page_cache: PageCache
    demo: bool = False
    secure_cookies: bool = False
    signup_throttle: Throttle = field(init=False)
    preview_throttle: Throttle = field(init=False)
    blank_form: BlankForm = field(init=False)

    def __post_init__(self) -> None:
        self.blank_form = BlankForm(self.pages, self.csrf, self.ctx.defaults, self.secure_cookies)
        self.signup_throttle = Throttle(
            self.limits.signups_per_ip, self.limits.signup_window_seconds
        )
        self.preview_throttle = Throttle(
            self.limits.previews_per_ip, self.limits.preview_window_seconds
        )


def client_ip(request: Request) -> str:
    """The client address as the server saw it (uvicorn's proxy headers set it behind a proxy)."""
    return request.client.host if request.client else "unknown"


NO_STORE = {"Cache-Control": "no-store"}


def web_of(request: Request) -> Web:
    """The app's shared state (set by ``create_app``)."""
    web: Web = request.app.state.web
    return web
