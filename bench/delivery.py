"""Delivery benchmark (issue 4): the raw SMTP limit vs the full outbox pipeline, and memory.

A local aiosmtpd sink that only counts runs in its own process. For each N, in fresh
subprocesses (so peak RSS is that run's alone):

  (a) raw:  pre-built digest emails, already serialised to bytes (real renderer, 25 papers
            each; 500 distinct ones sent in turn) blasted through SmtpTransport over the same
            number of reused connections (MAILER_SMTP_CONCURRENCY), min(N, 10k) sends: the
            rate does not depend on N;
  (b) full: pipeline.send_queued over N due outbox rows: claim, batch load, render, build,
            send, record.

The CPU each side used per message is reported too: on a shared machine the wall-clock rates
move with other load, the CPU costs much less.

The machine's speed drifts by a third within minutes (the sink's CPU per message, the same
work every time, has ranged from 1.9 to 3.0 ms), so one raw run and one full run can give
any ratio from 0.6 to 0.85. Each N is therefore measured ``--repeat`` times (default 3),
raw and full in turn, each full run between two raw runs: its ratio is to the mean of the
two. The table shows the median raw rate, the full run with the median ratio and that median
ratio (so b/a need not be the quotient of the two rates beside it); the JSON keeps every run.

    python bench/delivery.py                # N = 10k and 50k, three rounds each
    python bench/delivery.py --quick        # N = 1k and 5k, one round, a smoke test
    python bench/delivery.py --sizes 2000   # any sizes

Prints a table and writes bench/results/delivery.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONCURRENCY = 4
PAPERS_PER_DIGEST = 25
RAW_DISTINCT = 500  # pre-built messages, re-sent in turn: the raw run measures SMTP alone
RAW_MAX = 10_000  # the raw rate does not depend on N: measure it over at most this many sends


def sink_main(port: int) -> None:
    """An aiosmtpd server that accepts and counts, nothing else."""
    from aiosmtpd.controller import Controller

    class Counter:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Counter.count += 1
            return "250 OK"

    controller = Controller(Counter(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        sys.stdin.read()  # the parent closes our stdin to stop us
    finally:
        controller.stop()


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen([sys.executable, __file__, "--sink", str(port)], stdin=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("sink did not start")


def seed(url: str, count: int) -> None:
    """N active subscribers, each with one due digest listing 25 real sample papers."""
    from sqlalchemy import insert

    from mailer.db.digests import insert_digests
    from mailer.db.migrate import upgrade
    from mailer.db.session import make_engine, make_session_factory
    from mailer.db.tables import PaperRow, SubscriberRow

    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC) - timedelta(minutes=1)
    lines = (ROOT / "mailer" / "data" / "sample_papers.jsonl").read_text().splitlines()
    papers = [json.loads(line) for line in lines if line.strip()][:200]
    with sessions.begin() as session:
        paper_ids = session.scalars(
            insert(PaperRow).returning(PaperRow.id, sort_by_parameter_order=True),
            [_paper(p, now) for p in papers],
        ).all()
    for start in range(0, count, 5000):
        chunk = range(start, min(count, start + 5000))
        with sessions.begin() as session:
            sids = session.scalars(
                insert(SubscriberRow).returning(SubscriberRow.id, sort_by_parameter_order=True),
                [_subscriber(i, now) for i in chunk],
            ).all()
            insert_digests(
                session,
                [_digest(sid, paper_ids, now) for sid in sids],
                now,
            )
    engine.dispose()


def _paper(p: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "key": p["key"],
        "arxiv_id": p.get("arxiv_id"),
        "title": p["title"],
        "abstract": p.get("abstract", ""),
        "authors": p.get("authors", []),
        "categories": p.get("categories", []),
        "keywords": [],
        "sources": ["file"],
        "url": p.get("url"),
        "first_seen_at": now,
        "updated_at": now,
    }


def _subscriber(i: int, now: datetime) -> dict[str, Any]:
    return {
        "email": f"reader{i:06d}@example.net",
        "status": "active",
        "profile": "*",
        "frequency": "daily",
        "send_time": "08:00",
        "timezone": "UTC",
        "weekday": 0,
        "created_at": now,
        "confirmed_at": now,
        "hard_bounces": 0,
        "soft_bounces": 0,
    }


def _digest(sid: int, paper_ids: Sequence[int], now: datetime) -> Any:
    from mailer.db.digests import PlannedDigest
    from mailer.models import DigestStatus, Match, Paper, Period

    listed = [paper_ids[(sid * 7 + rank) % len(paper_ids)] for rank in range(PAPERS_PER_DIGEST)]
    return PlannedDigest(
        subscriber_id=sid,
        period=Period.parse("2026-11-22"),
        status=DigestStatus.PENDING,
        note=None,
        message_id=f"<bench-{sid}@example.org>",
        matches=tuple(
            Match(Paper(key=str(pid), title="", id=pid), 1.0 / (rank + 1), ())
            for rank, pid in enumerate(listed)
        ),
        matched_count=PAPERS_PER_DIGEST + 5,
        considered_count=200,
        window_start=None,
        window_end=now,
        profile="*",
    )


def _context(url: str) -> Any:
    from mailer.config import Settings
    from mailer.context import make_context
    from mailer.daemon import tuning
    from mailer.db.session import make_engine, make_session_factory

    settings = Settings(
        database_url=url,
        secret_key="bench-secret-key-0123456789abcdef",
        MAILER_FROM="Paper Digest <digest@example.org>",
    )
    sessions = make_session_factory(make_engine(url))
    # The process tuning the CLI applies (``mailer send`` runs under daemon.tuning).
    return make_context(settings, sessions, render_child_setup=tuning.render_child_setup)


def run_main(mode: str, url: str, count: int, port: int) -> None:
    """One measurement in this process; prints a JSON line."""
    from mailer.delivery import RetryPolicy, SmtpConfig, SmtpTransport
    from mailer.pipeline.render import render_stored, wire_message
    from mailer.pipeline.send import send_queued

    ctx = _context(url)
    config = SmtpConfig("127.0.0.1", port, security="none", concurrency=CONCURRENCY, timeout=30)

    async def raw() -> int:
        ids = range(1, min(count, RAW_DISTINCT) + 1)
        messages = [wire_message(ctx, render_stored(ctx, i)) for i in ids]

        async def blast(lane: int) -> None:
            # One loop per connection, not one task per message: memory stays flat.
            for i in range(lane, count, CONCURRENCY):
                await transport.send(messages[i % len(messages)], f"reader{i:06d}@example.net")

        async with SmtpTransport(config) as transport:
            started.append(_clock())
            await asyncio.gather(*(blast(lane) for lane in range(CONCURRENCY)))
        return count

    async def full() -> int:
        async with SmtpTransport(config) as transport:
            started.append(_clock())
            report = await send_queued(ctx, transport, RetryPolicy())
        return report.sent

    started: list[tuple[float, float]] = []
    from mailer.daemon.tuning import tuned

    if mode == "raw":
        sent = asyncio.run(raw())
    else:
        with tuned():
            sent = asyncio.run(full())
    wall, cpu = (now - then for now, then in zip(_clock(), started[0], strict=True))
    peak_kib = _peak_rss_kib()
    # Render processes (full mode) have ended by now: their peak RSS and CPU are counted too.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = {
        "mode": mode,
        "n": count,
        "sent": sent,
        "seconds": wall,
        "cpu": cpu,
        "rss": peak_kib,
        "render_processes": ctx.settings.render_processes if mode == "full" else 0,
        "children_rss": children.ru_maxrss,
    }
    print(json.dumps(line))


def _peak_rss_kib() -> int:
    """This process's own peak RSS.

    Not ``getrusage``: on Linux its ru_maxrss survives exec, so a child of the bench would
    report the bench's own peak (it just seeded N digests) rather than its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _clock() -> tuple[float, float]:
    """Wall-clock, and the CPU seconds of this process and its ended children (render pool)."""
    times = os.times()
    return (
        time.perf_counter(),
        times.user + times.system + times.children_user + times.children_system,
    )


def measure(mode: str, url: str, count: int, port: int, sink_pid: int) -> dict[str, Any]:
    """Run one measurement in a fresh process; adds rates, CPU per message and peak RSS."""
    sink_before = _cpu_seconds(sink_pid)
    out = subprocess.run(
        [sys.executable, __file__, "--run", mode, url, str(count), str(port)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    sink_cpu = _cpu_seconds(sink_pid) - sink_before
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    sent = max(1, result["sent"])
    result["per_second"] = result["sent"] / result["seconds"]
    result["client_cpu_ms_per_message"] = round(1000 * result.pop("cpu") / sent, 3)
    result["sink_cpu_ms_per_message"] = round(1000 * sink_cpu / sent, 3)
    result["peak_rss_mib"] = round(result.pop("rss") / 1024, 1)
    # ru_maxrss of a child counts from its fork: an upper bound of a render process's own peak.
    result["render_process_peak_rss_mib"] = round(result.pop("children_rss") / 1024, 1)
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", help="digest counts (default 10k 50k)")
    parser.add_argument(
        "--repeat", type=_positive, help="full runs per size (default 3; --quick: 1)"
    )
    parser.add_argument("--sink", type=int)
    parser.add_argument("--run", nargs=4, metavar=("MODE", "URL", "N", "PORT"))
    args = parser.parse_args()
    if args.sink:
        sink_main(args.sink)
        return
    if args.run:
        mode, url, count, port = args.run
        run_main(mode, url, int(count), int(port))
        return
    sizes = args.sizes or ([1000, 5000] if args.quick else [10_000, 50_000])
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    sink, port = start_sink()
    rows = []
    try:
        for count in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(measure_size(Path(tmp), count, repeat, port, sink.pid))
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)
    report(rows, quick=args.quick, repeat=repeat)


def measure_size(tmp: Path, count: int, repeat: int, port: int, sink_pid: int) -> dict[str, Any]:
    """``repeat`` full runs over N fresh due digests, each between two raw runs."""
    template = tmp / "seeded.db"
    seed(f"sqlite:///{template}", count)
    checkpoint(template)
    # The raw rate does not depend on N (the same pre-built messages go round).
    raw_args = (f"sqlite:///{template}", min(count, RAW_MAX), port, sink_pid)
    raw_runs = [measure("raw", *raw_args)]
    full_runs = []
    for _ in range(repeat):
        copy = tmp / "run.db"
        shutil.copyfile(template, copy)
        full_runs.append(measure("full", f"sqlite:///{copy}", count, port, sink_pid))
        for leftover in tmp.glob("run.db*"):  # with any -wal or -shm file SQLite left
            leftover.unlink()
        raw_runs.append(measure("raw", *raw_args))
        around = (raw_runs[-2]["per_second"] + raw_runs[-1]["per_second"]) / 2
        full_runs[-1]["ratio"] = round(full_runs[-1]["per_second"] / around, 3)
        print(json.dumps({"n": count, "full": full_runs[-1], "raw": raw_runs[-1]}), flush=True)
    return {
        "n": count,
        "raw": _median_run(raw_runs, "per_second"),
        "full": _median_run(full_runs, "ratio"),
        "ratio": statistics.median(run["ratio"] for run in full_runs),
        "ratios": [run["ratio"] for run in full_runs],
        "raw_runs": raw_runs,
        "full_runs": full_runs,
    }


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median ``key`` (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda run: float(run[key]))
    return ordered[(len(ordered) - 1) // 2]


def checkpoint(path: Path) -> None:
    """Fold SQLite's write-ahead log into the file, so that a copy of the file is complete."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def report(rows: list[dict[str, Any]], *, quick: bool, repeat: int) -> None:
    """Print the table (medians) and write bench/results/delivery.json (every run)."""
    print(
        f"{'N':>7} {'raw msg/s':>10} {'full msg/s':>11} {'b/a':>6} {'b/a min-max':>12}"
        f" {'peak RSS full (MiB)':>20} {'client CPU ms/msg raw/full':>27} {'sink CPU ms/msg':>16}"
    )
    for row in rows:
        raw, full = row["raw"], row["full"]
        row["peak_rss_mib"] = max(run["peak_rss_mib"] for run in row["full_runs"])
        row["cpu_ratio"] = round(
            (raw["client_cpu_ms_per_message"] + raw["sink_cpu_ms_per_message"])
            / (full["client_cpu_ms_per_message"] + full["sink_cpu_ms_per_message"]),
            3,
        )
        cpu = f"{raw['client_cpu_ms_per_message']:.2f} / {full['client_cpu_ms_per_message']:.2f}"
        spread = f"{min(row['ratios']):.2f}-{max(row['ratios']):.2f}"
        print(
            f"{row['n']:>7} {raw['per_second']:>10.0f} {full['per_second']:>11.0f}"
            f" {row['ratio']:>6.2f} {spread:>12} {row['peak_rss_mib']:>20.1f} {cpu:>27}"
            f" {full['sink_cpu_ms_per_message']:>16.2f}"
        )
    small, large = rows[0]["peak_rss_mib"], rows[-1]["peak_rss_mib"]
    growth = large / small - 1
    print(f"peak RSS growth {rows[0]['n']} -> {rows[-1]['n']}: {growth:+.1%} (goal <= +20%)")
    result = {
        "benchmark": "delivery",
        "command": "python bench/delivery.py" + (" --quick" if quick else ""),
        "quick": quick,
        "repeat": repeat,
        "ratio": "per size: the median over the full runs of full msg/s divided by the mean"
        " raw msg/s of the raw runs just before and just after it",
        "peak_rss": "per size: the largest peak RSS of its full runs",
        "concurrency": CONCURRENCY,
        "papers_per_digest": PAPERS_PER_DIGEST,
        "database": "sqlite",
        "raw": "pre-built, serialised messages (500 distinct, in turn) via SmtpTransport.send",
        "full": "pipeline.send_queued: claim, batch load, render, build, send, record",
        "cpu": "client CPU includes the render processes' CPU",
        "sink": "aiosmtpd in its own process; handle_DATA only counts",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "runs": rows,
        "rss_growth": round(growth, 3),
        "goals": {"ratio_min": 0.7, "rss_growth_max": 0.2},
        "goals_met": {
            "ratio": all(row["ratio"] >= 0.7 for row in rows),
            "rss_growth": growth <= 0.2,
        },
    }
    out = ROOT / "bench" / "results" / "delivery.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
