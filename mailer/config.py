"""Settings: every ``MAILER_*`` variable, declared once with its help text."""

from __future__ import annotations

import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailer.errors import ConfigError

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "placeholder", "dev"}
# Production keys: long enough that guessing one is hopeless, and none of the values people
# copy from examples (a guessed key forges links to anyone's preferences).
MIN_SECRET_LENGTH = 32
# "aaaa..." or "0123012301230123..." is long but guessable. 8, not more: 32 random hex digits
# (`openssl rand -hex 16`) use fewer than 10 symbols about once in 11,000 keys, fewer than 8
# about once in 25 million.
_MIN_DISTINCT = 8
# Words and runs a random key holds by chance less than once in a billion, hex keys included
# ("12345" or "abcdef" were in about one `openssl rand -hex 16` key in 10,000).
_PLACEHOLDER_WORDS = (
    "change", "replace", "example", "placeholder", "secret", "password", "dummy", "default",
    "insecure", "123456789", "abcdefg",
)  # fmt: skip
KEY_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is too weak to sign production links, or None when it will do."""
    if len(key) < MIN_SECRET_LENGTH:
        return f"is {len(key)} characters long; production needs at least {MIN_SECRET_LENGTH}"
    folded = key.casefold()
    word = next((w for w in _PLACEHOLDER_WORDS if w in folded), None)
    if word is not None:
        return f"looks like a placeholder (it contains {word!r})"
    if len(set(key)) < _MIN_DISTINCT:
        return f"uses only {len(set(key))} different characters"
    return None


def _usable_cpus() -> int:
    """CPUs this process may run on (a container's cpuset, not the whole host)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    """All configuration, read from ``MAILER_*`` environment variables and ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="MAILER_", env_file=".env", extra="ignore", validate_default=True
    )

    database_url: str = Field(
        "sqlite:///mailer.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user@host/db.",
    )
    smtp_host: str | None = Field(
        None, description="SMTP server host. Unset: mail goes to the Maildir MAILER_OUTBOX_DIR."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_username: str | None = Field(None, description="SMTP login user (optional).")
    smtp_password: str | None = Field(None, description="SMTP login password (optional).")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "starttls", description="Transport security: none, starttls or tls (implicit TLS)."
    )
    smtputf8: bool = Field(
        False,
        description="Accept new addresses whose part before the @ is not ASCII (üser@...)."
        " Set it only when the SMTP server offers SMTPUTF8.",
    )
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds before an SMTP command times out.")
    smtp_concurrency: int = Field(4, ge=1, le=64, description="Parallel SMTP connections.")
    send_rate: float = Field(0.0, ge=0, description="Max messages per second; 0 = unlimited.")
    render_processes: int = Field(
        default_factory=lambda: min(4, max(0, _usable_cpus() - 1)),
        ge=0,
        le=32,
        description="Processes that render digests beside the sender when a run has at least"
        " 50 to send; 0 renders in the sending process. Default: CPU cores - 1 (at most 4).",
    )
    outbox_dir: Path = Field(
        Path("outbox"), description="Maildir that receives mail when no SMTP host is set."
    )
    from_address: str = Field(
        "",
        validation_alias="MAILER_FROM",
        description="From address, e.g. 'Paper Digest <digest@example.org>'."
        " Required in production.",
    )
    reply_to: str | None = Field(
        None, description="Reply-To address for digests (optional), e.g. 'Lab <lab@example.org>'."
    )
    dkim_selector: str | None = Field(
        None,
        description="DKIM selector, e.g. mail2026; digests are signed when selector, domain"
        " and private key are all set.",
    )
    dkim_domain: str | None = Field(
        None, description="DKIM signing domain (d=), normally the From address's domain."
    )
    dkim_private_key: str | None = Field(
        None, description="DKIM RSA private key: the PEM text, or the path of a PEM file."
    )
    base_url: str = Field(
        "http://127.0.0.1:8000", description="Public URL of the web app, used in email links."
    )
    unsubscribe_mailto: str | None = Field(
        None,
        description="Optional mailto: URL for List-Unsubscribe, e.g. "
        "mailto:unsubscribe@example.org (only if that mailbox is processed).",
    )
    secret_key: str = Field(
        "",
        description="Signs link tokens. In dev a random key is made once and kept in"
        " ./.mailer-secret; production refuses to start with a key shorter than 32 characters"
        " or one that looks like a placeholder.",
    )
    env: Literal["dev", "production"] = Field(
        "dev", description="dev allows a generated secret key; production refuses to start."
    )
    sources: str = Field(
        "hf-daily",
        description="Comma list of sources: hf-daily, arxiv:cs.LG+cs.CL, rss:URL, file:PATH.",
    )
    hf_api_url: str = Field(
        "https://huggingface.co/api/daily_papers",
        description="Hugging Face daily papers endpoint (called with ?date=YYYY-MM-DD).",
    )
    arxiv_feed_url: str = Field(
        "https://rss.arxiv.org/atom", description="arXiv announcement feed base URL."
    )
    fetch_cron: str = Field(
        "0 * * * *", description="When sources are polled: a five-field cron in UTC (hourly)."
    )
    http_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a source request may wait to connect or for its next bytes before"
        " it is retried.",
    )
    http_deadline: float = Field(
        60.0,
        gt=0,
        description="Seconds one source request may take in all, connect to last byte; a"
        " slower answer (a server dripping bytes) fails that fetch and is not retried.",
    )
    fetch_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest response (after decompression) or file a source may hand over,"
        " in bytes; a larger one fails that fetch.",
    )
    fetch_max_items: int = Field(
        5000,
        ge=1,
        description="Items read per fetch of one source; later items are counted as skipped.",
    )
    relevance_model: str = Field(
        "",
        description="A sentence-transformers model directory installed on this machine (e.g."
        " all-MiniLM-L6-v2 saved with model.save(path)) that represents papers for the learned"
        " ranking; needs the embeddings extra, loads from local files only. Empty: TF-IDF over"
        " the paper store.",
    )
    default_send_time: str = Field("08:00", description="New subscribers' delivery time, HH:MM.")
    default_timezone: str = Field("UTC", description="New subscribers' IANA time zone.")
    max_papers: int = Field(25, ge=1, le=200, description="Papers listed per digest.")
    catch_up: Literal["each", "combined"] = Field(
        "each",
        description="After downtime: 'each' sends one digest per missed period (at most 7),"
        " 'combined' one digest with everything since the last one.",
    )
    first_digest_backfill: bool = Field(
        False,
        description="A new subscriber's first digest reaches back a whole period (24 h or 7 days)"
        " instead of starting at confirmation. The demo turns it on.",
    )
    web_host: str = Field("127.0.0.1", description="Address the web server listens on.")
    web_port: int = Field(8000, ge=1, le=65535, description="Port the web server listens on.")
    web_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Web server processes `mailer web` starts, sharing one listening socket"
        " (about one per CPU core; each holds its own page cache and search index).",
    )
    forwarded_allow_ips: str = Field(
        "",
        description="Comma list of proxy addresses (or *) whose X-Forwarded-For and"
        " X-Forwarded-Proto are believed; empty: the headers are ignored.",
    )
    retry_base_seconds: float = Field(60.0, gt=0, description="First retry backoff, seconds.")
    retry_deadline_hours: float = Field(
        24.0, gt=0, description="Give up retrying a digest this many hours after it was queued."
    )
    lease_seconds: int = Field(
        300, ge=1, description="How long a claimed row may stay 'sending' before it is reclaimed."
    )
    bounce_limit: int = Field(1, ge=1, description="Hard bounces before a subscriber is bounced.")
    retention_days: int = Field(
        90,
        ge=1,
        le=36_500,
        description="Days a digest's contents, bounce reports and the fetch log are kept"
        " (mailer prune, daily in the worker); a subscriber's latest digest and unsent ones"
        " are kept whatever their age.",
    )
    bounce_mailbox: str | None = Field(
        None,
        description="Where bounces and complaints arrive: a Maildir path, or an IMAP URL"
        " (imaps://user@host/INBOX, or imap://... with STARTTLS). Unset: none are read.",
    )
    bounce_password: str | None = Field(
        None, description="Password for the IMAP bounce mailbox (never logged)."
    )
    bounce_address: str | None = Field(
        None,
        description="Envelope sender of digests, e.g. bounces@example.org: each digest goes out"
        " from bounces+TAG@example.org, a tag signed with the secret key, so a report is"
        " applied only when it proves which digest it is about. Unset: the From address.",
    )
    bounce_interval_seconds: int = Field(
        300, ge=10, description="How often `mailer worker` reads the bounce mailbox."
    )
    bounce_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=16 * 1024,
        description="At most this much of one incoming report is read; the rest is ignored.",
    )
    bounce_max_parts: int = Field(
        200, ge=4, description="A report with more MIME parts than this is not parsed (kept)."
    )
    bounce_batch: int = Field(
        1000, ge=1, description="Reports read per `mailer bounces` run (the rest wait)."
    )
    import_max_record_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Longest CSV record (line, or quoted multi-line row) `subscribers import`"
        " reads; a longer one stops the import.",
    )
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines on stderr: text (key=value) or json (one object per line)."
    )

    @field_validator("default_send_time")
    @classmethod
    def _check_send_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be HH:MM (24-hour clock)")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from mailer.schedule import is_valid_timezone

        if not is_valid_timezone(value):
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    def source_specs(self) -> list[str]:
        """The configured source specs, in order, without blanks."""
        return [part.strip() for part in self.sources.split(",") if part.strip()]

    def effective_secret_key(self) -> str:
        """The signing key; a per-process random key in dev, an error in production when it is
        missing, short or a placeholder (see ``secret_key_problem``)."""
        if self.env == "production":
            problem = secret_key_problem(self.secret_key)
            if not self.secret_key:
                raise ConfigError(f"MAILER_SECRET_KEY must be set in production: {KEY_HINT}")
            if problem is not None:
                raise ConfigError(f"MAILER_SECRET_KEY {problem}: {KEY_HINT}")
            return self.secret_key
        if self.secret_key and self.secret_key.lower() not in _PLACEHOLDER_SECRETS:
            return self.secret_key
        return _dev_secret()

    def effective_from(self) -> str:
        """The From address; a local placeholder in dev, an error in production."""
        if self.from_address:
            return self.from_address
        if self.env == "production":
            raise ConfigError("MAILER_FROM must be set, e.g. 'Paper Digest <digest@example.org>'")
        return "Paper Digest <digest@localhost.localdomain>"


DEV_SECRET_FILE = Path(".mailer-secret")


@lru_cache(maxsize=1)
def _dev_secret() -> str:
    # Persisted so links in mails sent before a restart keep working in dev.
    try:
        existing = DEV_SECRET_FILE.read_text().strip()
    except OSError:
        existing = ""
    if existing:
        return existing
    key = secrets.token_urlsafe(32)
    try:
        DEV_SECRET_FILE.write_text(key + "\n")
        DEV_SECRET_FILE.chmod(0o600)
    except OSError:
        pass  # read-only working directory: the key lives for this process only
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; call at entry points only and pass values down."""
    return Settings()
