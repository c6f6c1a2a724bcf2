"""`mailer stats` shows bounce and complaint rates per day; `mailer why` explains them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.helpers.bounces import deliver, maildir, report
from tests.helpers.cli import Invoke, cli_fixture  # noqa: F401  (the `cli` fixture)
from tests.helpers.smtp_server import SmtpServer
from tests.test_bounces_cli import _send_one, env, smtp

__all__ = ["env", "smtp"]  # fixtures shared with test_bounces_cli
RCPT = "alice@example.net"


def _bounce_back(
    cli: Invoke, env: dict[str, str], smtp: SmtpServer, tmp_path: Path, name: str
) -> None:
    """Send one digest over SMTP, then deliver report ``name`` about it and read it."""
    envelope, message_id = _send_one(cli, env, smtp)
    data = report(name, return_path=envelope, message_id=message_id, rcpt=RCPT)
    deliver(maildir(tmp_path / "bounces"), data)
    assert cli("bounces", "--once", env=env).code == 0


def test_stats_show_bounce_and_complaint_rates_per_day(
    cli: Invoke, env: dict[str, str], smtp: SmtpServer, tmp_path: Path
) -> None:
    _bounce_back(cli, env, smtp, tmp_path, "arf_rfc5965_abuse.eml")
    stats = json.loads(cli("stats", "--json", env=env).out)
    today = datetime.now(UTC).date().isoformat()
    assert stats["bounces_per_day"] == [
        {
            "day": today, "sent": 1, "hard": 0, "soft": 0, "complaints": 1,
            "bounce_rate": 0.0, "complaint_rate": 1.0,
        }
    ]  # fmt: skip
    table = cli("stats", env=env).out
    assert "complaint rate" in table and "100.0 %" in table


def test_why_explains_a_complaint(
    cli: Invoke, env: dict[str, str], smtp: SmtpServer, tmp_path: Path
) -> None:
    _bounce_back(cli, env, smtp, tmp_path, "yahoo_arf_abuse.eml")
    why = json.loads(cli("why", RCPT, "--json", env=env).out)
    assert why["outcome"] == "complained"
    assert "reported it as spam" in why["summary"]
    assert any("unsubscribed and suppressed" in line for line in why["details"])


def test_why_explains_a_bounce_that_came_back_later(
    cli: Invoke, env: dict[str, str], smtp: SmtpServer, tmp_path: Path
) -> None:
    _bounce_back(cli, env, smtp, tmp_path, "exchange_online_recipient_not_found.eml")
    why = json.loads(cli("why", RCPT, "--json", env=env).out)
    assert why["outcome"] == "bounced"
    assert "bounced later" in why["summary"] and "5.1.10" in why["summary"]
    assert any(line.startswith("hard bounce reported by mail") for line in why["details"])
