"""Inputs a careless operator or a hostile user sends (issue 21, points 4 to 8).

Weak secret keys, unmailable addresses, control characters, out-of-range token ids, bad
command lines, what ``/healthz`` publishes and whom uvicorn believes about the client address.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import re
import secrets
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from mailer.addresses import normalise_email
from mailer.config import Settings, secret_key_problem
from mailer.context import Context, Defaults, make_context
from mailer.daemon.web_processes import uvicorn_options
from mailer.db import fetches as fetch_repo
from mailer.db.fetches import FetchRecord
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.errors import ConfigError, InvalidEmail, ProfileError, TokenError
from mailer.matching import parse_profile
from mailer.models import FetchOutcome
from mailer.subscribers.manage import SubscriberInput, add
from mailer.tokens import Purpose, Tokens
from mailer.web.app import create_app
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)
from tests.helpers.web_server import WebServer

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
KEY = "hostile-inputs-" + "k7Q2mZ9xR4vB8nW1"


# --- secrets (4) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("password", "is 8 characters long; production needs at least 32"),
        ("a", "is 1 characters long"),
        ("change-me-too", "is 13 characters long"),
        ("change-me-to-a-long-random-value-please", "looks like a placeholder"),
        ("0123456789abcdef0123456789abcdef", "looks like a placeholder"),
        ("ab" * 20, "uses only 2 different characters"),
    ],
)
def test_production_refuses_weak_secret_keys(key: str, reason: str) -> None:
    """Issue 21.4: MAILER_SECRET_KEY=password (or a, or change-me-too) started in production."""
    settings = Settings(env="production", secret_key=key, from_address="d@example.org")
    with pytest.raises(ConfigError, match=re.escape(reason)):
        settings.effective_secret_key()
    assert secret_key_problem(key) is not None


def test_a_random_key_is_accepted_and_dev_is_unchanged() -> None:
    # Many keys as operators make them (token_urlsafe, `openssl rand -hex 16`), from a fixed
    # seed so a rule that refuses a rare random key fails every run, not once in thousands.
    rng = random.Random(21)
    for _ in range(30_000):
        assert secret_key_problem(rng.randbytes(16).hex()) is None
        assert secret_key_problem(base64.urlsafe_b64encode(rng.randbytes(32)).decode()) is None
    good = secrets.token_urlsafe(32)
    assert Settings(env="production", secret_key=good).effective_secret_key() == good
    assert Settings(env="dev", secret_key="a").effective_secret_key() == "a"


def test_mailer_web_refuses_to_start_with_a_weak_key(cli: Invoke) -> None:
    env = {"MAILER_ENV": "production", "MAILER_SECRET_KEY": "password",
           "MAILER_FROM": "Digest <d@example.org>"}  # fmt: skip
    for command in (["web"], ["fetch", "--source", "file:/nonexistent.json"]):
        result = cli(*command, env=env)
        assert result.code == 3, result
        assert result.err.strip().splitlines() == [
            "error: configuration error: MAILER_SECRET_KEY is 8 characters long; production needs"
            " at least 32: generate one with: python -c 'import secrets;"
            " print(secrets.token_urlsafe(32))'"
        ]


# --- addresses (7) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("üser@example.org", "the part before the @ is not plain ASCII"),
        ("\uff26\uff55\uff4c\uff4c@example.org", "the part before the @ is not plain ASCII"),
        ("\ufffd\ufffd@example.org", "bytes that are not valid UTF-8"),
        ("a" * 65 + "@example.org", "the part before the @ is longer than 64 characters"),
        ("rob\x00ots@example.org", "contains a NUL character"),
        ("rob\x07ots@example.org", "contains a control character"),
        ("a@example.org\r\nBcc: b@example.org", "contains a line break"),
    ],
)
def test_unmailable_addresses_are_refused_for_new_subscribers(address: str, reason: str) -> None:
    """Issue 21.7 and 21.8: these created pending rows that could never be mailed (and a NUL
    was reported as a line break)."""
    with pytest.raises(InvalidEmail, match=re.escape(reason)):
        normalise_email(address, smtputf8=False)


def test_international_domains_are_stored_in_idna() -> None:
    """Issue 21.7: user@bücher.example gave a To: with an encoded word inside the address."""
    assert normalise_email("User@Bücher.example", smtputf8=False) == "user@xn--bcher-kva.example"
    assert normalise_email("a" * 64 + "@example.org", smtputf8=False) == "a" * 64 + "@example.org"
    # With MAILER_SMTPUTF8 the operator vouches for the server: a Unicode mailbox is allowed.
    assert normalise_email("üser@example.org", smtputf8=True) == "üser@example.org"


def test_cli_add_and_import_share_the_refusals(cli: Invoke, tmp_path: Path) -> None:
    added = cli("subscribers", "add", "üser@example.org", "--keywords", "robots")
    assert added.code == 2
    assert "the part before the @ is not plain ASCII" in added.err
    csv = tmp_path / "people.csv"
    csv.write_text(
        "email,keywords\n"
        "one@example.org,robots\n"
        "üser@example.org,robots\n"
        "rob\x00ots@example.org,robots\n"
        "two@bücher.example,robots\n"
        "three@example.org,rob\x00ots\n"
        'four@example.org,"*, robots"\n',
        encoding="utf-8",
    )
    imported = cli("subscribers", "import", str(csv), "--confirmed")
    assert imported.code == 1, imported  # some rows rejected
    assert (
        "line 3: 'üser@example.org' is not a valid email address: the part before the @ is"
        " not plain ASCII" in imported.err
    )
    assert "line 4: email address contains a NUL character" in imported.err
    assert (
        "line 6: invalid profile: the profile contains a control character (U+0000)" in imported.err
    )
    assert "line 7: invalid profile: * means every paper" in imported.err
    listed = cli("subscribers", "list", "--json")
    emails = sorted(row["email"] for row in __import__("json").loads(listed.out))
    assert emails == ["one@example.org", "two@xn--bcher-kva.example"]


def test_smtputf8_setting_lets_the_cli_add_a_unicode_mailbox(cli: Invoke) -> None:
    added = cli("subscribers", "add", "üser@example.org", "--keywords", "robots",
                env={"MAILER_SMTPUTF8": "true"})  # fmt: skip
    assert added.code == 0, added


# --- profiles (8) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("*, robots", "* means every paper and cannot be combined with other interests"),
        ("robots\n*", "* means every paper and cannot be combined with other interests"),
        ("rob\x00ots", "the profile contains a control character (U+0000)"),
        ("robots\x1b[31m", "the profile contains a control character (U+001B)"),
    ],
)
def test_profiles_refuse_star_with_interests_and_control_characters(
    profile: str, message: str
) -> None:
    """Issue 21.8: `*, robots` was accepted; issue 21.6: a NUL broke the import on PostgreSQL."""
    with pytest.raises(ProfileError, match=re.escape(message)):
        parse_profile(profile)
    assert len(parse_profile("*\n-survey").interests) == 1  # exclusions beside * are fine


# --- tokens (8) ---------------------------------------------------------------------------


@pytest.fixture
def ctx(session_factory: SessionFactory) -> Context:
    return make_context(Settings(secret_key=KEY), session_factory, clock=lambda: NOW)


def test_a_signed_token_for_an_impossible_id_is_not_valid(ctx: Context) -> None:
    """Issue 21.8: a validly signed token for id 10**30 gave a 500."""
    tokens = Tokens(KEY)
    for purpose in Purpose:
        huge = tokens.make(purpose, 10**30)
        with pytest.raises(TokenError, match="not valid"):
            tokens.read_id(purpose, huge)
    with WebServer(create_app(ctx, secret_key=KEY)) as server, httpx.Client() as http:
        for path in ("preferences", "unsubscribe", "digest", "confirm"):
            token = tokens.make(Purpose(path), 10**30)
            response = http.get(server.url(f"/{path}/{token}"))
            assert response.status_code == 400, (path, response.status_code)


def test_a_forged_token_shape_cannot_reach_a_query(ctx: Context) -> None:
    """The raw payload of a token signed with the right key but holding -1 or a bool."""
    serializer = URLSafeTimedSerializer(KEY, salt="mailer.preferences")
    for subject in (-1, 0, True, 2**63):
        with pytest.raises(TokenError):
            Tokens(KEY).read_id(Purpose.PREFERENCES, serializer.dumps(subject))


# --- command line (8) ---------------------------------------------------------------------


def test_out_into_a_missing_directory_is_one_line(cli: Invoke, tmp_path: Path) -> None:
    """Issue 21.8: export/preview --out /missing/dir/f printed tracebacks."""
    cli("subscribers", "add", "a@example.org", "--keywords", "robots", "--confirmed")
    missing = tmp_path / "missing" / "f.csv"
    for command in (
        ["subscribers", "export", "--out", str(missing)],
        ["preview", "a@example.org", "--out", str(tmp_path / "missing" / "x.html")],
    ):
        result = cli(*command)
        assert result.code == 2, result
        assert result.err.startswith("error: cannot write ")
        assert result.err.strip().endswith("No such file or directory")
        assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["foo://x", "postgresql+nodriver://h/db", "not a url"])
def test_a_bogus_database_url_exits_3(cli: Invoke, url: str) -> None:
    """Issue 21.8: a bogus database URL exited 1 where the docs say 3."""
    result = cli("stats", env={"MAILER_DATABASE_URL": url})
    assert result.code == 3, result
    assert result.err.startswith("error: configuration error: MAILER_DATABASE_URL")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["fetch", "--bogus"], "error: No such option: --bogus (see `mailer fetch --help`)"),
        (["nosuch"], "error: No such command 'nosuch' (see `mailer --help`)"),
        (["subscribers", "add"],
         "error: Missing argument 'email' (see `mailer subscribers add --help`)"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line(cli: Invoke, args: list[str], line: str) -> None:
    """Issue 21.8: usage errors printed three lines."""
    result = cli(*args)
    assert result.code == 2
    assert result.err.splitlines() == [line]


# --- /healthz (5) -------------------------------------------------------------------------


def test_healthz_publishes_status_not_errors_paths_or_credentials(
    ctx: Context, session_factory: SessionFactory
) -> None:
    """Issue 21.5: /healthz showed a feed's token, local file paths and their error texts."""
    feed = "rss:https://reader:***@feeds.example.org/lab.xml?token=***"
    local = "file:/srv/private/lab/papers.jsonl"
    with session_factory.begin() as session:
        for name, outcome, error in (
            (feed, FetchOutcome.ERROR, f"{feed}: HTTP 500 from https://reader:***@feeds…"),
            (local, FetchOutcome.ERROR, f"{local}: cannot read the file (Permission denied)"),
            ("hf-daily", FetchOutcome.OK, None),
        ):
            record = FetchRecord(source=name, day=NOW.date(), outcome=outcome, error=error)
            fetch_repo.record_fetch(session, record, NOW, (None, None))
    with WebServer(create_app(ctx)) as server:
        body = httpx.get(server.url("/healthz")).json()
    assert body["sources"] == {
        "file:papers.jsonl": {"status": "error", "last_success": None,
                              "last_attempt": NOW.isoformat()},
        "hf-daily": {"status": "ok", "last_success": NOW.isoformat(),
                     "last_attempt": NOW.isoformat()},
        "rss:https://feeds.example.org/lab.xml": {"status": "error", "last_success": None,
                                                  "last_attempt": NOW.isoformat()},
    }  # fmt: skip
    text = str(body)
    assert "reader" not in text and "/srv" not in text and "Permission" not in text


# --- behind a proxy (8) -------------------------------------------------------------------


async def _client_address(scope: dict[str, object], receive: object, send: object) -> None:
    """An ASGI app answering with the client address uvicorn put in the scope."""
    if scope["type"] != "http":
        return
    host = str(scope["client"][0]) if scope.get("client") else "?"  # type: ignore[index]
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": host.encode()})  # type: ignore[operator]


def _seen_address(settings: Settings) -> str:
    """The client address uvicorn, configured as the daemon configures it, reports."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        _client_address, host="127.0.0.1", port=port, **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)

    async def go() -> str:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as http:
            answer = await http.get(
                f"http://127.0.0.1:{port}/", headers={"X-Forwarded-For": "203.0.113.9"}
            )
        server.should_exit = True
        await serving
        return answer.text

    return asyncio.run(go())


def test_x_forwarded_for_is_ignored_unless_a_proxy_is_named() -> None:
    """Issue 21.8: uvicorn believed X-Forwarded-For from 127.0.0.1, so anything on the host
    could choose the address the per-IP throttles count."""
    assert _seen_address(Settings()) == "127.0.0.1"
    assert _seen_address(Settings(forwarded_allow_ips="127.0.0.1")) == "203.0.113.9"


# --- nothing logged about a refused address (7) ---------------------------------------------


def test_a_refused_signup_logs_no_address(
    ctx: Context, session_factory: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidEmail):
        add(session_factory, SubscriberInput("üser@example.org", "robots"), confirmed=False,
            defaults=Defaults(), now=NOW)  # fmt: skip
    with session_factory() as session:
        assert session.scalars(select(SubscriberRow)).all() == []
    assert "üser" not in caplog.text


# --- SMTPUTF8 only when the server offers it (7) --------------------------------------------


def _unicode_signup(session_factory: SessionFactory, transport_factory: object) -> bool:
    """Sign up üser@example.org with MAILER_SMTPUTF8 on; True when the confirmation went out."""
    from mailer.subscribers import signup

    settings = Settings(secret_key=KEY, smtputf8=True)
    context = make_context(settings, session_factory, clock=lambda: NOW)
    pending = signup.request(context, SubscriberInput("üser@example.org", "robots"), NOW)
    return asyncio.run(signup.send_confirmation(context, transport_factory, pending))  # type: ignore[arg-type]


def test_a_unicode_mailbox_is_mailed_over_smtputf8(session_factory: SessionFactory) -> None:
    """Issue 21.7: üser@ rows existed whose confirmation could never be built."""
    from mailer.delivery.smtp import SmtpConfig, SmtpTransport
    from tests.helpers.smtp_server import SmtpServer

    with SmtpServer() as smtp:  # offers SMTPUTF8
        config = SmtpConfig(host=smtp.host, port=smtp.port, security="none", timeout=10)
        assert _unicode_signup(session_factory, lambda: SmtpTransport(config))
        (received,) = smtp.messages
    assert received.rcpt_tos == ("üser@example.org",)
    assert b"To: \xc3\xbcser@example.org" in received.raw  # raw UTF-8, no encoded word


def test_a_unicode_mailbox_is_not_sent_to_a_server_without_smtputf8(
    session_factory: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from mailer.delivery.smtp import SmtpConfig, SmtpTransport
    from tests.helpers.smtp_server import SmtpServer

    caplog.set_level(logging.INFO)
    with SmtpServer(smtputf8=False) as smtp:
        config = SmtpConfig(host=smtp.host, port=smtp.port, security="none", timeout=10)
        assert not _unicode_signup(session_factory, lambda: SmtpTransport(config))
        assert smtp.messages == []
    assert "üser" not in caplog.text


def test_a_unicode_mailbox_reaches_the_maildir(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    from mailer.delivery.transport import MaildirTransport

    assert _unicode_signup(session_factory, lambda: MaildirTransport(tmp_path / "outbox"))
    (stored,) = (tmp_path / "outbox" / "new").iterdir()
    assert b"To: \xc3\xbcser@example.org" in stored.read_bytes()


def test_masking_keeps_the_sentence_around_a_url() -> None:
    from mailer.logs import masked

    assert masked("rss:http://u:pw@h/f?token=abc: connection failed") == (
        "rss:http://u:***@h/f?token=***: connection failed"
    )
    assert masked("see https://tok3n@h/x?api_key=a:b&page=2#top") == (
        "see https://***@h/x?api_key=***&page=2#top"
    )


def test_python_dash_m_mailer_names_itself_mailer_in_usage_errors(tmp_path: Path) -> None:
    """`python -m mailer` and test runners printed their own name in usage lines."""
    result = subprocess.run(
        [sys.executable, "-m", "mailer", "nosuch"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MAILER_DATABASE_URL": f"sqlite:///{tmp_path}/m.db"},
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: No such command 'nosuch' (see `mailer --help`)"]
