"""End to end as an operator runs it: the real CLI, a real SMTP server, a local papers API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.db.session import make_engine
from mailer.db.tables import DigestRow, PaperRow, SubscriberRow
from mailer.mail.message import list_id_for
from tests.helpers.http_server import Canned, LocalHTTPServer
from tests.helpers.smtp_server import SmtpServer


def _item(arxiv_id: str, title: str, summary: str, upvotes: int = 0) -> dict[str, object]:
    """One daily-papers item in the shape of the Hugging Face API."""
    return {
        "paper": {
            "id": arxiv_id,
            "title": title,
            "summary": summary,
            "authors": [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}],
            "publishedAt": "2026-11-20T17:00:00.000Z",
            "upvotes": upvotes,
        },
        "title": title,
        "numComments": 0,
    }


PAPERS = [
    _item("2611.00001", "Diffusion Policy for Visuomotor Control",
          "We learn robot manipulation policies with a denoising diffusion model.", 12),
    _item("2611.00002", "Learning World Models for Atari",
          "A world model predicts future frames and rewards for planning.", 30),
    _item("2611.00003", "<script>alert(1)</script> Jailbreaking Language Models",
          "We study jailbreak prompts that make chat assistants misbehave.", 3),
    _item("2611.00004", "A Survey of Diffusion Models",
          "We review diffusion models for images, audio and video generation.", 50),
    _item("2611.00005", "Sparse Autoencoders Find Interpretable Features",
          "Dictionary learning recovers features from transformer activations.", 7),
]  # fmt: skip

# Profile → the titles it must receive, exactly.
PROFILES = {
    "alice@example.org": ("diffusion, -survey", {"Diffusion Policy for Visuomotor Control"}),
    "bob@example.org": (
        '"world model", sparse autoencoders',
        {"Learning World Models for Atari", "Sparse Autoencoders Find Interpretable Features"},
    ),
    "carol@example.org": ("jailbreak", {"<script>alert(1)</script> Jailbreaking Language Models"}),
}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def hf_api() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as server:
        server.route("/api/daily_papers", Canned.json(PAPERS))
        yield server


def _env(db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(
        MAILER_DATABASE_URL=db_url,
        MAILER_SMTP_HOST=smtp.host,
        MAILER_SMTP_PORT=str(smtp.port),
        MAILER_SMTP_SECURITY="none",
        MAILER_SOURCES="hf-daily",
        MAILER_HF_API_URL=hf_api.url("/api/daily_papers"),
        MAILER_FROM="Paper Digest <digest@example.org>",
        MAILER_SECRET_KEY="e2e-test-secret-key-0123456789",
        MAILER_OUTBOX_DIR=str(tmp_path / "outbox"),
    )
    return env


def mailer(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point."""
    return subprocess.run(
        [sys.executable, "-m", "mailer", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _titles(text: str) -> set[str]:
    flat = " ".join(text.split())
    return {item["title"] for item in PAPERS if " ".join(str(item["title"]).split()) in flat}  # type: ignore[index]


def test_run_once_sends_each_subscriber_exactly_their_papers_once(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    env = _env(db_url, smtp, hf_api, tmp_path)
    for email, (profile, _) in PROFILES.items():
        added = mailer(env, "subscribers", "add", email, "--keywords", profile,
                       "--confirmed", "--send-time", "00:00")  # fmt: skip
        assert added.returncode == 0, added.stderr

    first = mailer(env, "run", "--once")
    assert first.returncode == 0, first.stderr
    assert "sent=3" in first.stdout

    received = smtp.messages
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(PROFILES)
    for message in received:
        recipient = message.rcpt_tos[0]
        text = message.message.get_body(("plain",)).get_content()
        assert _titles(text) == PROFILES[recipient][1], recipient
        assert message.message["List-Id"] == list_id_for(env["MAILER_FROM"])

    second = mailer(env, "run", "--once")
    assert second.returncode == 0, second.stderr
    assert "sent=0" in second.stdout
    assert len(smtp.messages) == 3

    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(PaperRow)) == len(PAPERS)
        assert conn.scalar(select(func.count()).select_from(DigestRow)) == 3
    engine.dispose()
    requests = hf_api.requests_to("/api/daily_papers")
    assert requests, "the daily-papers API was never asked"
    # A polite client: the User-Agent names the project and the deployment to contact.
    assert requests[0].header("User-Agent") == "mailer/0.1.0 (+http://127.0.0.1:8000)"


def test_script_title_is_escaped_in_html_and_intact_in_text(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    env = _env(db_url, smtp, hf_api, tmp_path)
    added = mailer(env, "subscribers", "add", "carol@example.org", "--keywords", "jailbreak",
                   "--confirmed", "--send-time", "00:00")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert mailer(env, "run", "--once").returncode == 0

    (message,) = smtp.messages
    html = message.message.get_body(("html",)).get_content()
    text = message.message.get_body(("plain",)).get_content()
    assert "<script>alert(1)</script>" in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_invalid_email_exits_non_zero_with_one_line_and_stores_nothing(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    env = _env(db_url, smtp, hf_api, tmp_path)
    result = mailer(env, "subscribers", "add", "not-an-email", "--keywords", "x")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not-an-email" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(SubscriberRow)) == 0
    engine.dispose()


def test_maildir_is_used_without_smtp_host(
    db_url: str, hf_api: LocalHTTPServer, tmp_path: Path, smtp: SmtpServer
) -> None:
    env = _env(db_url, smtp, hf_api, tmp_path)
    del env["MAILER_SMTP_HOST"]
    mailer(env, "subscribers", "add", "alice@example.org", "--keywords", "diffusion",
           "--confirmed", "--send-time", "00:00")  # fmt: skip
    result = mailer(env, "run", "--once")
    assert result.returncode == 0, result.stderr
    assert "Maildir" in result.stderr
    delivered = list((tmp_path / "outbox" / "new").iterdir())
    assert len(delivered) == 1
    assert b"alice@example.org" in delivered[0].read_bytes()
    assert smtp.messages == []


def test_dry_run_lists_who_gets_what_and_sends_nothing(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    env = _env(db_url, smtp, hf_api, tmp_path)
    mailer(env, "subscribers", "add", "alice@example.org", "--keywords", "diffusion, -survey",
           "--confirmed", "--send-time", "00:00")  # fmt: skip
    assert mailer(env, "fetch").returncode == 0
    result = mailer(env, "send", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    (line,) = json.loads(result.stdout)
    assert line["email"] == "alice@example.org"
    assert line["papers"] == ["Diffusion Policy for Visuomotor Control"]
    assert smtp.messages == []
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DigestRow)) == 0
    engine.dispose()


def test_digests_are_dkim_signed_when_configured(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    import base64
    import shutil

    import dkim

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test key")
    key = tmp_path / "dkim.pem"
    subprocess.run([openssl, "genrsa", "-traditional", "-out", str(key), "2048"], check=True)
    public = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    env = _env(db_url, smtp, hf_api, tmp_path)
    env.update(MAILER_DKIM_SELECTOR="s1", MAILER_DKIM_DOMAIN="example.org")
    env["MAILER_DKIM_PRIVATE_KEY"] = str(key)
    mailer(env, "subscribers", "add", "alice@example.org", "--keywords", "diffusion",
           "--confirmed", "--send-time", "00:00")  # fmt: skip
    result = mailer(env, "run", "--once")
    assert result.returncode == 0, result.stderr

    (received,) = smtp.messages
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.example.org."
        return record

    assert received.raw.startswith(b"DKIM-Signature:") or b"\nDKIM-Signature:" in received.raw
    assert dkim.verify(received.raw, dnsfunc=dns)


def test_partial_dkim_settings_are_a_configuration_error(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    env = _env(db_url, smtp, hf_api, tmp_path)
    env["MAILER_DKIM_SELECTOR"] = "s1"
    result = mailer(env, "run", "--once")
    assert result.returncode == 3
    assert "MAILER_DKIM_DOMAIN" in result.stderr and "Traceback" not in result.stderr
