"""As an operator runs it: a digest sent over SMTP bounces later into a Maildir."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.mail.verp import ReturnPath
from mailer.tokens import Tokens
from tests.helpers.bounces import deliver, maildir, report, states
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)
from tests.helpers.smtp_server import SmtpServer

SECRET = "cli-bounce-secret-0123456789abcdef"
RCPT = "alice@example.net"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def env(smtp: SmtpServer, tmp_path: Path) -> dict[str, str]:
    papers = tmp_path / "papers.json"
    papers.write_text(
        json.dumps([{"key": "p1", "title": "Diffusion policy for robots", "abstract": "x"}])
    )
    maildir(tmp_path / "bounces")
    return {
        "MAILER_SMTP_HOST": smtp.host,
        "MAILER_SMTP_PORT": str(smtp.port),
        "MAILER_SMTP_SECURITY": "none",
        "MAILER_FROM": "Paper Digest <digest@example.org>",
        "MAILER_SECRET_KEY": SECRET,
        "MAILER_BOUNCE_ADDRESS": "bounces@example.org",
        "MAILER_BOUNCE_MAILBOX": str(tmp_path / "bounces"),
        "MAILER_SOURCES": f"file:{papers}",
        "MAILER_RENDER_PROCESSES": "0",
    }


def _send_one(cli: Invoke, env: dict[str, str], smtp: SmtpServer) -> tuple[str, str]:
    assert (
        cli("subscribers", "add", RCPT, "--keywords", "diffusion", "--confirmed", env=env).code == 0
    )
    assert cli("fetch", env=env).code == 0
    assert cli("send", "--now", env=env).code == 0
    (sent,) = smtp.messages
    return sent.mail_from, sent.message_id


def test_a_digest_that_bounces_later_is_applied_once(
    cli: Invoke, env: dict[str, str], smtp: SmtpServer, tmp_path: Path
) -> None:
    envelope, message_id = _send_one(cli, env, smtp)
    # The envelope sender is this digest's own, signed: bounces+<id>-<tag>@example.org.
    path = ReturnPath.parse("bounces@example.org", Tokens(SECRET))
    assert envelope.startswith("bounces+") and path.digests_named(envelope) == [1]
    box = maildir(tmp_path / "bounces")
    bounce = deliver(
        box,
        report("postfix_user_unknown.eml", return_path=envelope, message_id=message_id, rcpt=RCPT),
    )
    vacation = deliver(box, report("vacation_rfc3834.eml", return_path=envelope, rcpt=RCPT))
    first = cli("bounces", "--once", "--json", env=env)
    assert first.code == 0, first.err
    counts = json.loads(first.out)
    assert (counts["read"], counts["hard"], counts["auto_reply"], counts["now_bounced"]) == (
        2,
        1,
        1,
        1,
    )
    shown = json.loads(cli("subscribers", "show", RCPT, "--json", env=env).out)
    assert shown["status"] == "bounced"
    assert shown["digests"][0]["status"] == "bounced"
    listed = json.loads(cli("suppressions", "list", "--json", env=env).out)
    assert [(e["email"], e["reason"]) for e in listed] == [(RCPT, "hard_bounce")]
    assert "5.1.1" in listed[0]["detail"]
    assert states(tmp_path / "bounces")["cur"] == sorted([f"{bounce}:2,S", f"{vacation}:2,S"])
    again = json.loads(cli("bounces", "--once", "--json", env=env).out)
    assert again["read"] == 0
    # Erased, the address leaves only its hash, and still cannot come back.
    assert cli("subscribers", "remove", RCPT, "--yes", env=env).code == 0
    (erased,) = json.loads(cli("suppressions", "list", "--json", env=env).out)
    assert (erased["email"], erased["reason"], erased["detail"]) == (None, "hard_bounce", None)
    refused = cli("subscribers", "add", RCPT, "--keywords", "x", "--reconsented", env=env)
    assert refused.code == 2 and "suppression list (hard_bounce)" in refused.err
    csv = tmp_path / "people.csv"
    csv.write_text(f"email,keywords\n{RCPT},x\n", encoding="utf-8")
    imported = cli("subscribers", "import", str(csv), "--confirmed", env=env)
    assert imported.code == 1 and "is on the suppression list (hard_bounce)" in imported.err


def test_bounces_without_a_mailbox_is_a_configuration_error(cli: Invoke) -> None:
    result = cli("bounces", "--once")
    assert result.code == 3
    assert result.err.strip() == (
        "error: configuration error: set MAILER_BOUNCE_MAILBOX to a Maildir path or an imaps:// URL"
    )
    odd = cli("bounces", "--once", env={"MAILER_BOUNCE_MAILBOX": "pop3://x@y/"})
    assert odd.code == 3 and "not pop3://" in odd.err


def test_a_bad_bounce_address_is_a_configuration_error(cli: Invoke, tmp_path: Path) -> None:
    maildir(tmp_path / "box")
    env = {
        "MAILER_BOUNCE_MAILBOX": str(tmp_path / "box"),
        "MAILER_BOUNCE_ADDRESS": "Bounces <b@x.org>",
    }
    result = cli("bounces", "--once", env=env)
    assert result.code == 3 and "MAILER_BOUNCE_ADDRESS must be a plain address" in result.err
