"""The one place where dependencies are assembled: settings in, a ``Context`` out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from mailer.clock import Clock, utc_now
from mailer.config import Settings
from mailer.db.session import SessionFactory
from mailer.errors import ConfigError
from mailer.mail.message import list_id_for, parse_address
from mailer.mail.verp import ReturnPath
from mailer.rendering import Renderer
from mailer.tokens import Purpose, Tokens


@dataclass(frozen=True)
class Context:
    """Everything the stages need, built once at an entry point and passed down."""

    session_factory: SessionFactory
    tokens: Tokens
    renderer: Renderer
    sender: str
    base_url: str
    plan_options: PlanOptions
    defaults: Defaults
    clock: Clock = utc_now
    unsubscribe_mailto: str | None = None
    reply_to: str | None = None
    dkim: DkimKey | None = None
    # Run first in each render process (the runtime's ``daemon.tuning.render_child_setup``).
    render_child_setup: Callable[[], None] | None = None
    return_path: ReturnPath | None = None  # per-digest envelope senders (MAILER_BOUNCE_ADDRESS)
    # The learned ranking's sentence-embedding model (MAILER_RELEVANCE_MODEL); None: TF-IDF.
    relevance_model: Path | None = None
    # Lets the sender start render processes configured like itself (holds secrets: no repr).
    settings: Settings | None = field(default=None, repr=False)

    @property
    def list_id(self) -> str:
        """The List-Id header value, at the From domain."""
        return list_id_for(self.sender)

    @property
    def envelope_sender(self) -> str:
        """The bare From address, used as the SMTP envelope sender (MAIL FROM)."""
        return parse_address(self.sender, what="From address").addr_spec

    def envelope_sender_for(self, digest_id: int) -> str:
        """The envelope sender of one digest: signed per digest with a bounce address."""
        if self.return_path is None:
            return self.envelope_sender
        return self.return_path.for_digest(digest_id)

    def link(self, purpose: Purpose, subject: int, *, at: int | None = None) -> str:
        """An absolute URL carrying a token for ``purpose`` (stamped ``at``, or now)."""
        token = self.tokens.make(purpose, subject, at=at)
        return f"{self.base_url.rstrip('/')}/{purpose.value}/{token}"


@dataclass(frozen=True, slots=True)
class DkimKey:
    """What DKIM signing needs: selector, signing domain and the PEM private key."""

    selector: str
    domain: str
    private_key: bytes


def dkim_from_settings(settings: Settings) -> DkimKey | None:
    """The DKIM key when all three settings are set; ConfigError when only some are."""
    parts = (settings.dkim_selector, settings.dkim_domain, settings.dkim_private_key)
    if not any(parts):
        return None
    if not all(parts):
        raise ConfigError(
            "DKIM needs MAILER_DKIM_SELECTOR, MAILER_DKIM_DOMAIN and MAILER_DKIM_PRIVATE_KEY"
        )
    assert settings.dkim_selector and settings.dkim_domain and settings.dkim_private_key
    key = settings.dkim_private_key.strip()
    if not key.startswith("-----BEGIN"):
        try:
            key = Path(key).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"MAILER_DKIM_PRIVATE_KEY: cannot read {key}: {exc}") from None
    return DkimKey(settings.dkim_selector, settings.dkim_domain, key.encode())


def make_context(
    settings: Settings,
    session_factory: SessionFactory,
    clock: Clock = utc_now,
    *,
    render_child_setup: Callable[[], None] | None = None,
) -> Context:
    """Build the pipeline context from settings (raises ConfigError in production if unsafe)."""
    tokens = Tokens(settings.effective_secret_key())
    return Context(
        session_factory=session_factory,
        tokens=tokens,
        renderer=Renderer(),
        sender=settings.effective_from(),
        base_url=settings.base_url,
        plan_options=PlanOptions(
            max_papers=settings.max_papers,
            catch_up=CatchUp(settings.catch_up),
            first_digest_backfill=settings.first_digest_backfill,
        ),
        defaults=Defaults(
            send_time=settings.default_send_time,
            timezone=settings.default_timezone,
            smtputf8=settings.smtputf8,
        ),
        clock=clock,
        unsubscribe_mailto=settings.unsubscribe_mailto,
        reply_to=settings.reply_to,
        dkim=dkim_from_settings(settings),
        render_child_setup=render_child_setup,
        return_path=(
            ReturnPath.parse(settings.bounce_address, tokens) if settings.bounce_address else None
        ),
        relevance_model=(
            Path(settings.relevance_model).expanduser() if settings.relevance_model else None
        ),
        settings=settings,
    )


class CatchUp(StrEnum):
    """What a subscriber gets for periods missed while the daemon was down."""

    EACH = "each"  # one digest per missed period, each with that period's papers
    COMBINED = "combined"  # one digest with everything; the missed periods are recorded


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Operator choices that shape planning."""

    max_papers: int = 25
    catch_up: CatchUp = CatchUp.EACH
    # A first digest normally starts at confirmation; the demo backfills a whole period.
    first_digest_backfill: bool = False


@dataclass(frozen=True, slots=True)
class Defaults:
    """Operator defaults for fields a new subscriber leaves out."""

    send_time: str = "08:00"
    timezone: str = "UTC"
    smtputf8: bool = False  # a new address may have a non-ASCII local part (MAILER_SMTPUTF8)
