"""Hostile sources (issue 21): what ``mailer fetch`` costs against payloads built to hurt.

Each scenario runs ``python -m mailer fetch --source hf-daily --date 2025-08-06`` in a fresh
subprocess (so its peak RSS is its own), against a real local HTTP server, on a fresh SQLite
database, and reads the fetch record it wrote:

  normal  the stored Hugging Face day (tests/data/sources): the baseline, measured in the run
  bomb    1 GiB of zeros, gzip-compressed (about 1 MB on the wire)
  drip    a valid day sent one byte every 0.25 s (about 60 s in all); MAILER_HTTP_TIMEOUT=5,
          MAILER_HTTP_DEADLINE=5
  many    100,000 small valid items (13 MB of JSON)
  title   one item with a 5.6 MB title and a 2 MB abstract

Goals: the bomb's peak RSS below 100 MiB; the drip ends at the deadline and its fetch record
says so; nothing stored beyond the documented caps. A run that takes longer than
``--kill-after`` seconds (default 120) is killed and reported as such (the code before issue 21
never ends the drip by itself).

    python bench/hostile.py                      # this checkout
    python bench/hostile.py --code /tmp/before   # another tree's mailer/ (e.g. from
                                                 # `git archive main | tar -x -C /tmp/before`)

Prints a table and writes bench/results/hostile.json (or hostile-<label>.json with --label).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import hostile  # noqa: E402
from tests.helpers.http_server import Canned, LocalHTTPServer  # noqa: E402

DAY = "2025-08-06"
NORMAL = (ROOT / "tests" / "data" / "sources" / "hf_daily_2025-08-06.json").read_bytes()
RSS_GOAL_MIB = 100.0
DEADLINE = 5.0


@dataclass
class Run:
    """One scenario's measurements."""

    scenario: str
    exit_code: int | None
    seconds: float
    peak_rss_mib: float
    outcome: str | None
    error: str | None
    stored: int
    skipped: int | None
    longest_title: int


def scenarios() -> dict[str, Canned]:
    """The answer served for each scenario."""
    return {
        "normal": Canned(NORMAL, content_type="application/json"),
        "bomb": hostile.bomb_answer(),
        "drip": hostile.drip_answer(NORMAL[:240] + b"]", interval=0.25),
        "many": Canned(hostile.many_items(100_000), content_type="application/json"),
        "title": Canned(hostile.huge_title(), content_type="application/json"),
    }


def fetch_once(
    url: str, code: Path, workdir: Path, kill_after: float
) -> tuple[int | None, float, float]:
    """Run ``mailer fetch`` against ``url``; (exit code or None if killed, seconds, peak MiB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    env.update(
        PYTHONPATH=str(code),
        MAILER_DATABASE_URL=f"sqlite:///{workdir}/mailer.db",
        MAILER_HF_API_URL=url,
        MAILER_HTTP_TIMEOUT=str(DEADLINE),
        MAILER_HTTP_DEADLINE=str(DEADLINE),
        MAILER_LOG_LEVEL="WARNING",
    )
    subprocess.run(
        [sys.executable, "-m", "mailer", "db", "upgrade"], env=env, cwd=workdir,
        check=True, capture_output=True,
    )  # fmt: skip
    command = [sys.executable, "-m", "mailer", "fetch", "--source", "hf-daily", "--date", DAY]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    killed = False
    # Never poll(): it would reap the child, and wait4 below needs to, to read its rusage.
    while not _exited(process.pid):
        if time.monotonic() - started > kill_after:
            process.kill()
            killed = True
            break
        time.sleep(0.05)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    code_or_none = None if killed else process.returncode
    return code_or_none, seconds, usage.ru_maxrss / 1024


def _exited(pid: int) -> bool:
    """True once ``pid`` is a zombie (exited, not yet reaped): its rusage is then complete."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def read_store(database: Path) -> tuple[str | None, str | None, int, int | None, int]:
    """(outcome, error, papers stored, skipped, longest title) from the run's database."""
    with sqlite3.connect(database) as connection:
        run = connection.execute(
            "SELECT outcome, error, skipped FROM fetch_run ORDER BY id DESC LIMIT 1"
        ).fetchone()
        stored, longest = connection.execute(
            "SELECT count(*), coalesce(max(length(title)), 0) FROM paper"
        ).fetchone()
    if run is None:
        return None, None, stored, None, longest
    return run[0], run[1], stored, run[2], longest


def measure(code: Path, kill_after: float) -> list[Run]:
    """Every scenario, in turn, against one local server."""
    runs: list[Run] = []
    answers = scenarios()
    with LocalHTTPServer() as server:
        for name, answer in answers.items():
            server.route(f"/{name}", answer)
            with tempfile.TemporaryDirectory(prefix=f"hostile-{name}-") as folder:
                workdir = Path(folder)
                exit_code, seconds, rss = fetch_once(
                    server.url(f"/{name}"), code, workdir, kill_after
                )
                outcome, error, stored, skipped, longest = read_store(workdir / "mailer.db")
            runs.append(Run(name, exit_code, round(seconds, 2), round(rss, 1), outcome,
                            error[:160] if error else None, stored, skipped, longest))  # fmt: skip
            print(f"  {name}: done in {seconds:.1f} s", file=sys.stderr)
    return runs


def report(runs: list[Run], code: Path, label: str | None, kill_after: float) -> None:
    """Print the table and write the JSON."""
    print(f"{'scenario':<8} {'exit':>5} {'seconds':>8} {'peak RSS MiB':>13} {'stored':>7}"
          f" {'skipped':>8} {'longest title':>14}  outcome / error")  # fmt: skip
    for run in runs:
        shown = "killed" if run.exit_code is None else str(run.exit_code)
        print(f"{run.scenario:<8} {shown:>5} {run.seconds:>8.1f} {run.peak_rss_mib:>13.1f}"
              f" {run.stored:>7} {run.skipped if run.skipped is not None else '-':>8}"
              f" {run.longest_title:>14}  {run.outcome or '(no fetch record)'}"
              f"{': ' + run.error if run.error else ''}")  # fmt: skip
    by_name = {run.scenario: run for run in runs}
    bomb, drip = by_name["bomb"], by_name["drip"]
    goals = {
        "bomb_peak_rss_below_100_mib": bomb.peak_rss_mib < RSS_GOAL_MIB,
        "drip_ends_at_the_deadline": drip.exit_code is not None
        and drip.seconds < DEADLINE + 10
        and "deadline" in (drip.error or ""),
    }
    baseline = by_name["normal"].peak_rss_mib
    print(
        f"baseline (normal day) peak RSS {baseline:.1f} MiB; bomb {bomb.peak_rss_mib:.1f} MiB"
        f" (goal < {RSS_GOAL_MIB:.0f}); goals met: {goals}"
    )
    result: dict[str, Any] = {
        "benchmark": "hostile",
        "command": "python bench/hostile.py" + (f" --code {code}" if code != ROOT else ""),
        "code": str(code),
        "label": label,
        "deadline_seconds": DEADLINE,
        "kill_after_seconds": kill_after,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": "peak RSS is the fetch subprocess's ru_maxrss; the machine was shared",
        "runs": [asdict(run) for run in runs],
        "goals": goals,
    }
    name = f"hostile-{label}.json" if label else "hostile.json"
    out = ROOT / "bench" / "results" / name
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


def main() -> None:
    """Parse arguments, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="tree whose mailer/ is run")
    parser.add_argument("--label", help="suffix of the JSON file (e.g. before)")
    parser.add_argument("--kill-after", type=float, default=120.0, help="seconds per run")
    args = parser.parse_args()
    runs = measure(args.code.resolve(), args.kill_after)
    report(runs, args.code.resolve(), args.label, args.kill_after)


if __name__ == "__main__":
    main()
