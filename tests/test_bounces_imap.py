"""The bounce mailbox over IMAP, against a real IMAP server (pymap) with TLS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailer.config import Settings
from mailer.context import Defaults, make_context
from mailer.db.digests import PlannedDigest, insert_digest
from mailer.db.session import SessionFactory
from mailer.db.tables import SubscriberRow
from mailer.delivery.imap import ImapInbox, MailboxError
from mailer.delivery.inboxes import open_inbox
from mailer.models import DigestStatus
from mailer.schedule import Period
from mailer.subscribers import manage as subscriptions
from mailer.subscribers.bounce_mailbox import check_mailbox
from mailer.subscribers.manage import SubscriberInput
from tests.helpers.bounces import report
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)
from tests.helpers.imap_server import PASSWORD, USER, ImapServer

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RCPT = "alice@example.net"
SEEN, FLAGGED = b"\\Seen", b"\\Flagged"


@pytest.fixture(scope="module")
def imap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapServer]:
    with ImapServer(tmp_path_factory.mktemp("imap")) as server:
        yield server


@pytest.fixture
def trusted(imap: ImapServer, monkeypatch: pytest.MonkeyPatch) -> ImapServer:
    """The test certificate is trusted, as a private CA would be (SSL_CERT_FILE)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(imap.cert))
    client = imap.client()  # each test starts from an empty INBOX
    try:
        uids = client.search(["ALL"])
        if uids:
            client.delete_messages(uids)
            client.expunge()
    finally:
        client.logout()
    return imap


def _settings(url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "secret_key": "imap-test-secret-0123456789abcdef",
        "MAILER_FROM": "Paper Digest <digest@example.org>",
        "bounce_address": "bounces@example.org",
        "bounce_mailbox": url,
        "bounce_password": PASSWORD,
    }
    return Settings(**{**values, **extra})  # type: ignore[arg-type]


def _sent_digest(sf: SessionFactory) -> tuple[int, int, str]:
    raw = SubscriberInput(RCPT, "diffusion", send_time="08:00", timezone="UTC")
    sid = subscriptions.add(sf, raw, confirmed=True, defaults=Defaults(), now=NOW).id
    plan = PlannedDigest(
        subscriber_id=sid, period=Period.parse("2026-12-01"), status=DigestStatus.SENT, note=None,
        message_id="<d1@example.org>", matches=(), matched_count=1, considered_count=3,
        window_start=None, window_end=NOW,
    )  # fmt: skip
    with sf.begin() as session:
        digest_id = insert_digest(session, plan, NOW)
    assert digest_id is not None
    return sid, digest_id, "<d1@example.org>"


@pytest.mark.parametrize("scheme", ["imaps", "imap"])
def test_reports_are_read_over_imap_with_tls_and_flagged_seen(
    trusted: ImapServer, session_factory: SessionFactory, scheme: str
) -> None:
    port = trusted.tls_port if scheme == "imaps" else trusted.port
    settings = _settings(f"{scheme}://{USER}@127.0.0.1:{port}/INBOX")
    ctx = make_context(settings, session_factory, clock=lambda: NOW)
    sid, digest_id, message_id = _sent_digest(session_factory)
    assert ctx.return_path is not None
    envelope = ctx.return_path.for_digest(digest_id)
    trusted.append(report("yahoo_arf_abuse.eml", return_path=envelope, message_id=message_id))
    trusted.append(report("vacation_rfc3834.eml", return_path=envelope, rcpt=RCPT))
    bomb = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n\r\nx\r\n" * 5000
    trusted.append(bomb)
    run = check_mailbox(ctx, settings)
    counts = run.as_dict()
    assert (counts["read"], counts["complaint"], counts["auto_reply"], counts["unreadable"]) == (
        3, 1, 1, 1,
    )  # fmt: skip
    with session_factory() as session:
        row = session.get(SubscriberRow, sid)
        assert row is not None and row.status == "unsubscribed"
    assert trusted.flags() == [(SEEN,), (SEEN,), (FLAGGED, SEEN)]
    assert check_mailbox(ctx, settings).read == 0  # a second run reads nothing


def test_a_large_message_is_fetched_only_up_to_the_cap(
    trusted: ImapServer, session_factory: SessionFactory
) -> None:
    settings = _settings(
        f"imaps://{USER}@127.0.0.1:{trusted.tls_port}/INBOX", bounce_max_bytes=64 * 1024
    )
    trusted.append(report("human_reply.eml") + b"x" * (3 * 1024 * 1024))
    inbox = open_inbox(settings)
    assert isinstance(inbox, ImapInbox)
    try:
        (incoming,) = list(inbox.messages(10))
    finally:
        inbox.close()
    assert (len(incoming.data), incoming.truncated) == (64 * 1024, True)


def test_a_wrong_password_is_one_line_without_the_password(
    cli: Invoke, trusted: ImapServer
) -> None:
    env = {
        "MAILER_BOUNCE_MAILBOX": f"imaps://{USER}@127.0.0.1:{trusted.tls_port}/INBOX",
        "MAILER_BOUNCE_PASSWORD": "wrong-password-1234",
        "SSL_CERT_FILE": str(trusted.cert),
    }
    result = cli("bounces", "--once", env=env)
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: bounce mailbox 127.0.0.1:")
    assert "wrong-password-1234" not in result.err + result.out


def test_an_untrusted_certificate_is_refused(
    session_factory: SessionFactory, imap: ImapServer
) -> None:
    settings = _settings(f"imaps://{USER}@127.0.0.1:{imap.tls_port}/INBOX")
    inbox = open_inbox(settings)
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        list(inbox.messages(1))


def test_the_cli_reads_imap_once_as_json(cli: Invoke, trusted: ImapServer) -> None:
    env = {
        "MAILER_BOUNCE_MAILBOX": f"imap://{USER}@127.0.0.1:{trusted.port}/INBOX",
        "MAILER_BOUNCE_PASSWORD": PASSWORD,
        "SSL_CERT_FILE": str(trusted.cert),
    }
    trusted.append(report("human_reply.eml"))
    result = cli("bounces", "--once", "--json", env=env)
    assert result.code == 0, result.err
    assert json.loads(result.out)["unknown"] == 1


def test_imap_urls_are_checked_before_connecting(tmp_path: Path) -> None:
    from mailer.errors import ConfigError

    for url, message in (
        ("imaps://127.0.0.1/INBOX", "must name a user and a host"),
        ("imaps://u@h:notaport/INBOX", "port is not a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            open_inbox(_settings(url))
    with pytest.raises(ConfigError, match="MAILER_BOUNCE_PASSWORD"):
        open_inbox(_settings("imaps://u@h/INBOX", bounce_password=None))
