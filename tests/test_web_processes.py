"""`mailer web --workers N`: N processes on one port, a dead one replaced, all stopped on TERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from mailer.db.migrate import upgrade
from tests.test_daemon import _free_port, _healthy, _wait_for


def children(pid: int) -> set[int]:
    """The live child processes of ``pid`` that are web servers (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def test_two_processes_serve_one_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/web.db"
    upgrade(url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MAILER_DATABASE_URL": url, "MAILER_SECRET_KEY": "k" * 40}
    env["MAILER_WEB_WORKERS"] = "2"  # the setting; --workers would override it
    server = subprocess.Popen(
        [sys.executable, "-m", "mailer", "web", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_for(lambda: len(children(server.pid)) == 2 and _healthy(base), timeout=90)
        with httpx.Client(base_url=base, timeout=10) as client:
            for path in ("/papers", "/papers?q=robot", "/api/papers", "/"):
                assert client.get(path).status_code == 200, path
        first = children(server.pid)
        os.kill(min(first), signal.SIGKILL)  # one dies: the parent starts another
        _wait_for(lambda: len(children(server.pid) - first) == 1, timeout=90)
        _wait_for(lambda: _healthy(base), timeout=30)
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, output
    assert "with 2 processes" in output and "starting another" in output
    assert children(server.pid) == set()
