"""The daemon as a process: `mailer run` serves the form, mails confirmations, stops on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers.http_server import LocalHTTPServer
from tests.helpers.smtp_server import SmtpServer
from tests.test_end_to_end import _env, hf_api, smtp

__all__ = ["hf_api", "smtp"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_signup_confirm_digest_and_sigterm(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(db_url, smtp, hf_api, tmp_path)
    env.update(MAILER_BASE_URL=base, MAILER_DEFAULT_SEND_TIME="00:00")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "mailer", "run", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: _healthy(base))
        with httpx.Client(base_url=base, timeout=10) as client:
            form = client.get("/")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            answer = client.post("/subscribe", data={
                "email": "dora@example.org", "profile": "diffusion, -survey",
                "frequency": "daily", "weekday": "0", "send_time": "00:00",
                "timezone": "UTC", "csrf_token": token.group(1), "action": "subscribe",
            })  # fmt: skip
            assert answer.status_code == 200
            _wait_for(lambda: len(smtp.messages) == 1)
            confirmation = smtp.messages[0].message
            assert confirmation["Auto-Submitted"] == "auto-generated"
            body = confirmation.get_body(("plain",)).get_content()
            link = re.search(rf"{re.escape(base)}/confirm/\S+", body)
            assert link is not None
            assert client.get(link.group(0)).status_code == 200
        # The welcome mail arrives; the first digest starts at confirmation, so papers the
        # daemon fetched before it are not resent as "new".
        _wait_for(lambda: len(smtp.messages) >= 2)
        welcome = smtp.messages[1].message
        assert welcome["Subject"] == "You are subscribed to the paper digest"
        assert welcome["To"] == "dora@example.org"
        assert "every day at 00:00 (UTC)" in welcome.get_body(("plain",)).get_content()
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, output
        assert "Traceback" not in output
    finally:
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait()


def test_a_taken_port_fails_the_start_with_one_line(
    db_url: str, smtp: SmtpServer, hf_api: LocalHTTPServer, tmp_path: Path
) -> None:
    env = _env(db_url, smtp, hf_api, tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("web", "run"):
            done = subprocess.run(
                [sys.executable, "-m", "mailer", command, "--port", str(port)],
                env=env, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert done.returncode == 1, (command, done.stderr)
            errors = [line for line in done.stderr.splitlines() if "level=" not in line]
            assert errors == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
            assert "Traceback" not in done.stderr
