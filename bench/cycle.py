"""Whole-cycle benchmark (issue 17): ``mailer send --now`` as an operator runs it, to the wire.

For each database (``--db sqlite|postgres``) and size N (10k, 20k, 100k; ``--quick``: 1k):

  seed      N active subscribers with the matching bench's realistic profiles (1-6 interests
            from the sample's vocabulary, phrases, exclusions, a few author:/cat: scopes),
            written through the import path's bulk insert, and a batch of 1,000 papers
            through ``upsert_papers`` (what a fetch stores);
  plan      the planner alone, ``send --now --dry-run``'s work, in its own process:
            subscribers planned per second and per CPU-second;
  send      ``mailer send --now`` as a subprocess against an aiosmtpd sink in its own process,
            from the moment the command starts to the last message the sink accepted (the sink
            records every accept time): digests/s, time to first and last message, peak RSS
            of the command (and of its render processes) and of the sink, CPU seconds, and
            database bytes per digest (SQLite file growth; on PostgreSQL the growth of
            ``pg_total_relation_size`` of digest and digest_paper);
  raw       in the same run, the wire's limit: real messages of that send (the first 200 the
            sink accepted, so the same mean size), pre-serialised, blasted through
            ``SmtpTransport`` over the same number of connections to the same sink;
  workers   (PostgreSQL) the planner that ``mailer worker`` runs, 1 process vs 2 on copies of
            the same due set: wall and CPU seconds, digests written, duplicates, subscribers
            left without a digest.

    python bench/cycle.py --quick                       # 1k on SQLite, a smoke run
    python bench/cycle.py --db sqlite --sizes 10000 20000
    python bench/cycle.py --db postgres --sizes 100000 --only plan workers
    python bench/cycle.py --profile 20000               # cProfile of the planner (dry run)

Prints a table and writes bench/results/cycle.json (``--quick`` writes nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from matching import SEED, ProfileMaker, load_sample, make_batch  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "cycle.json"
CONCURRENCY = 4  # MAILER_SMTP_CONCURRENCY's default
SAMPLES = 200  # accepted messages the sink keeps for the raw run
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SENDER = "Paper Digest <digest@example.org>"
SECRET = "bench-secret-key-0123456789abcdef"
PHASES = ("plan", "send", "raw", "workers")


# --- the sink ---------------------------------------------------------------------------


def sink_main(port: int) -> None:
    """An aiosmtpd server that records when each message was accepted and how large it was.

    Each line ``dump DIR`` on stdin writes what was recorded since the last dump to
    ``DIR/stats.json`` (and the first ``SAMPLES`` messages to ``DIR/NNN.eml``), then starts
    afresh; end of input stops the server.
    """
    from aiosmtpd.controller import Controller

    class Recorder:
        def __init__(self) -> None:
            self.times: list[float] = []
            self.sizes: list[int] = []
            self.samples: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data = envelope.original_content or envelope.content
            self.times.append(time.time())
            self.sizes.append(len(data))
            if len(self.samples) < SAMPLES:
                self.samples.append(data)
            return "250 OK"

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        for line in sys.stdin:
            folder = Path(line.split(maxsplit=1)[1].strip())
            times, sizes, samples = recorder.times, recorder.sizes, recorder.samples
            recorder.times, recorder.sizes, recorder.samples = [], [], []
            _write_dump(folder, times, sizes, samples)
    finally:
        controller.stop()


def _write_dump(folder: Path, times: list[float], sizes: list[int], samples: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(samples):
        (folder / f"{n:03d}.eml").write_bytes(data)
    stats = {
        "count": len(times),
        "first": min(times, default=None),
        "last": max(times, default=None),
        "mean_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
    }
    (folder / "stats.json").write_text(json.dumps(stats))


class Sink:
    """The recording sink in its own process."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(self.port)], stdin=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sink did not start")

    def dump(self, folder: Path) -> dict[str, Any]:
        """What the sink accepted since the last dump (samples kept in ``folder``)."""
        assert self.proc.stdin is not None
        stats = folder / "stats.json"
        stats.unlink(missing_ok=True)
        self.proc.stdin.write(f"dump {folder}\n")
        self.proc.stdin.flush()
        while not stats.exists():
            time.sleep(0.05)
        time.sleep(0.05)  # written in one call; let it land
        result: dict[str, Any] = json.loads(stats.read_text())
        return result

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def peak_rss_mib(self) -> float:
        return _vm_hwm_kib(self.proc.pid) / 1024

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


# --- databases --------------------------------------------------------------------------


@dataclass
class Store:
    """One benchmark database: a seeded template and fresh copies of it per run."""

    kind: str
    folder: Path
    template: str = ""

    def url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.folder / (name + '.db')}"
        from sqlalchemy.engine import make_url

        return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

    def create(self, name: str) -> str:
        """An empty database called ``name``; its URL."""
        if self.kind == "postgres":
            self._admin(
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
            )
        return self.url(name)

    def copy(self, name: str) -> str:
        """A fresh copy of the seeded template; its URL."""
        if self.kind == "sqlite":
            _checkpoint(self.folder / f"{self.template}.db")
            shutil.copyfile(self.folder / f"{self.template}.db", self.folder / f"{name}.db")
            for suffix in ("-wal", "-shm"):
                (self.folder / f"{name}.db{suffix}").unlink(missing_ok=True)
        else:
            self._admin(
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"',
            )
        return self.url(name)

    def drop(self, name: str) -> None:
        if self.kind == "sqlite":
            for path in self.folder.glob(f"{name}.db*"):
                path.unlink()
        else:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def bytes_of_digests(self, name: str) -> int:
        """What the outbox takes: the SQLite file, or PostgreSQL's digest tables with indexes."""
        if self.kind == "sqlite":
            return sum(p.stat().st_size for p in self.folder.glob(f"{name}.db*"))
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(name))
        try:
            with engine.connect() as conn:
                query = text(
                    "SELECT pg_total_relation_size('digest')"
                    " + pg_total_relation_size('digest_paper')"
                )
                return int(conn.execute(query).scalar_one())
        finally:
            engine.dispose()

    def _admin(self, *statements: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


def _checkpoint(path: Path) -> None:
    """Fold SQLite's write-ahead log into the file, so that a copy of the file is complete."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def seed(url: str, count: int, now: datetime) -> dict[str, float]:
    """1,000 papers as a fetch stores them, N subscribers imported two days ago (so due)."""
    from mailer.context import Defaults
    from mailer.db import papers as paper_repo
    from mailer.db.migrate import upgrade
    from mailer.db.session import make_engine, make_session_factory
    from mailer.subscribers.importer import import_csv

    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    sample = load_sample()
    started = time.perf_counter()
    with sessions.begin() as session:
        batch = [_unnumbered(p) for p in make_batch(sample, random.Random(SEED))]
        paper_repo.upsert_papers(session, batch, now - timedelta(hours=1))
    papers_s = time.perf_counter() - started
    maker = ProfileMaker(sample, SEED + 1)
    rows = "".join(_csv_row(i, maker.profile()) for i in range(count))
    started = time.perf_counter()
    report = import_csv(
        sessions,
        ("email,keywords\n" + rows).encode(),
        defaults=Defaults(),
        confirmed=True,
        now=now - timedelta(days=2),
    )
    engine.dispose()
    if report.errors or len(report.imported) != count:
        raise SystemExit(f"import refused rows: {report.errors[:3]}")
    subscribers_s = time.perf_counter() - started
    return {"papers_s": round(papers_s, 2), "subscribers_s": round(subscribers_s, 2)}


def _unnumbered(paper: Any) -> Any:
    """A batch paper as a source hands it over: no store id yet, a source name."""
    from dataclasses import replace

    return replace(paper, id=None, source="file")


def _csv_row(i: int, profile: str) -> str:
    quoted = profile.replace('"', '""')
    return f'reader{i:07d}@example.net,"{quoted}"\n'


# --- processes --------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm_kib(pid: int) -> int:
    """A process's peak resident set so far (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(child) for child in text)
    except OSError:
        pass
    return found


class PeakWatch:
    """Samples the peak RSS of a process and of each of its descendants while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            todo = [self.pid]
            while todo:
                pid = todo.pop()
                self.peaks[pid] = max(self.peaks.get(pid, 0), _vm_hwm_kib(pid))
                todo.extend(_children(pid))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        others = [kib for pid, kib in self.peaks.items() if pid != self.pid]
        return {
            "peak_rss_mib": round(self.peaks.get(self.pid, 0) / 1024, 1),
            "children_peak_rss_mib": round(max(others, default=0) / 1024, 1),
            "children": len(others),
        }


def run_process(
    command: list[str], env: dict[str, str], *, stdout: Any = subprocess.PIPE
) -> dict[str, Any]:
    """Run a command to its end: wall and CPU seconds (with its children), peak RSS, output."""
    started = time.time()
    proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    watch = PeakWatch(proc.pid)
    out, err = proc.communicate()
    ended = time.time()
    peaks = watch.stop()
    usage = _children_cpu()
    if proc.returncode:
        raise SystemExit(f"{command[:4]} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"started": started, "seconds": ended - started, "out": out or "", **peaks, **usage}


_CPU_SEEN = [0.0]


def _children_cpu() -> dict[str, float]:
    """CPU seconds of the children reaped since the last call (with their own children)."""
    times = os.times()
    total = times.children_user + times.children_system
    spent, _CPU_SEEN[0] = total - _CPU_SEEN[0], total
    return {"cpu_s": round(spent, 2)}


def _env(url: str, port: int | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "MAILER_DATABASE_URL": url,
        "MAILER_FROM": SENDER,
        "MAILER_SECRET_KEY": SECRET,
        "MAILER_SMTP_CONCURRENCY": str(CONCURRENCY),
        "MAILER_LOG_LEVEL": "WARNING",
        "PYTHONHASHSEED": "0",
    }
    if port is not None:
        env |= {
            "MAILER_SMTP_HOST": "127.0.0.1",
            "MAILER_SMTP_PORT": str(port),
            "MAILER_SMTP_SECURITY": "none",
        }
    return env


def _mailer() -> str:
    return str(Path(sys.executable).parent / "mailer")


# --- the measurements -------------------------------------------------------------------


def plan_child(url: str, mode: str, profile_out: str | None) -> None:
    """The planner in this process (``mode``: dry = send --now --dry-run's work, due = a
    worker's planning, written); prints a JSON line."""
    from mailer.config import Settings
    from mailer.context import make_context
    from mailer.daemon import tuning
    from mailer.db.session import make_engine, make_session_factory
    from mailer.pipeline.plan import plan

    settings = Settings(database_url=url, secret_key=SECRET, MAILER_FROM=SENDER)
    ctx = make_context(settings, make_session_factory(make_engine(url)))
    profiler = None
    if profile_out:
        import cProfile

        profiler = cProfile.Profile()
    wall, cpu = time.perf_counter(), time.process_time()
    with tuning.tuned():
        if profiler is not None:
            profiler.enable()
        report = plan(ctx, force=mode == "dry", dry_run=mode == "dry")
        if profiler is not None:
            profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None and profile_out:
        profiler.dump_stats(profile_out)
    planned = report.queued + report.no_match + report.no_papers + report.combined
    print(
        json.dumps(
            {
                "planned": planned,
                "queued": report.queued,
                "no_match": report.no_match,
                "already_planned": report.already_planned,
                "seconds": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "lines_checksum": _checksum(report.lines),
            }
        )
    )


def _checksum(lines: list[Any]) -> str:
    """A digest of the dry run's decisions, to compare planners: who gets which papers."""
    import hashlib

    digest = hashlib.sha256()
    for line in sorted(lines, key=lambda line: line.email):
        digest.update(repr((line.email, line.status, line.papers, line.matched)).encode())
    return digest.hexdigest()[:16]


def measure_plan(store: Store, count: int) -> dict[str, Any]:
    """The planner alone over every subscriber (send --now --dry-run), in a fresh process."""
    url = store.url(store.template)
    run = run_process([sys.executable, __file__, "--plan", url, "dry"], _env(url))
    child = json.loads(run["out"].strip().splitlines()[-1])
    return {
        "subscribers": count,
        "planned": child["planned"],
        "queued": child["queued"],
        "plan_s": child["seconds"],
        "plan_cpu_s": child["cpu_s"],
        "per_s": round(count / child["seconds"], 1),
        "per_cpu_s": round(count / child["cpu_s"], 1),
        "process_s": round(run["seconds"], 2),
        "peak_rss_mib": run["peak_rss_mib"],
        "checksum": child["lines_checksum"],
    }


def measure_send(store: Store, count: int, sink: Sink, folder: Path) -> dict[str, Any]:
    """``mailer send --now`` from its start to the last message the sink accepted."""
    name = f"send_{count}"
    url = store.copy(name)
    before = store.bytes_of_digests(name)
    sink_cpu = sink.cpu_seconds()
    run = run_process([_mailer(), "send", "--now", "--json"], _env(url, sink.port))
    accepted = sink.dump(folder / "send")
    sink_cpu = sink.cpu_seconds() - sink_cpu
    after = store.bytes_of_digests(name)
    summary = json.loads(run["out"][run["out"].index("{") :])
    store.drop(name)
    sent = accepted["count"]
    last = (accepted["last"] - run["started"]) if sent else None
    return {
        "subscribers": count,
        "queued": summary["queued"],
        "sent": summary["sent"],
        "accepted": sent,
        "command_s": round(run["seconds"], 2),
        "first_message_s": round(accepted["first"] - run["started"], 2) if sent else None,
        "last_message_s": round(last, 2) if last else None,
        "per_s": round(sent / last, 1) if last else 0.0,
        "cpu_s": run["cpu_s"],
        "sink_cpu_s": round(sink_cpu, 2),
        "peak_rss_mib": run["peak_rss_mib"],
        "render_process_peak_rss_mib": run["children_peak_rss_mib"],
        "render_processes": run["children"],
        "sink_peak_rss_mib": round(sink.peak_rss_mib(), 1),
        "mean_message_bytes": accepted["mean_bytes"],
        "database_bytes_added": after - before,
        "database_bytes_per_digest": round((after - before) / max(1, summary["queued"]), 1),
    }


def raw_child(port: int, folder: str, count: int) -> None:
    """Pre-serialised messages blasted over ``CONCURRENCY`` reused connections."""
    from mailer.delivery import SmtpConfig, SmtpTransport, WireMessage

    messages = [
        WireMessage(path.read_bytes(), "digest@example.org")
        for path in sorted(Path(folder).glob("*.eml"))
    ]
    config = SmtpConfig("127.0.0.1", port, security="none", concurrency=CONCURRENCY, timeout=30)

    async def blast(transport: SmtpTransport, lane: int) -> None:
        for i in range(lane, count, CONCURRENCY):  # one loop per connection: flat memory
            await transport.send(messages[i % len(messages)], f"reader{i:07d}@example.net")

    async def main() -> None:
        async with SmtpTransport(config) as transport:
            await asyncio.gather(*(blast(transport, lane) for lane in range(CONCURRENCY)))

    asyncio.run(main())


def measure_raw(count: int, sink: Sink, folder: Path) -> dict[str, Any]:
    """The wire's limit, the same number of messages as the send delivered."""
    sink_cpu = sink.cpu_seconds()
    command = [sys.executable, __file__, "--raw", str(sink.port), str(folder / "send"), str(count)]
    run = run_process(command, dict(os.environ))
    accepted = sink.dump(folder / "raw")
    last = accepted["last"] - run["started"]
    return {
        "messages": accepted["count"],
        "last_message_s": round(last, 2),
        "per_s": round(accepted["count"] / last, 1),
        "cpu_s": run["cpu_s"],
        "sink_cpu_s": round(sink.cpu_seconds() - sink_cpu, 2),
        "mean_message_bytes": accepted["mean_bytes"],
    }


def measure_workers(store: Store, count: int, workers: int) -> dict[str, Any]:
    """``workers`` planner processes (a worker's due-digest planning) over one due set."""
    name = f"workers_{count}_{workers}"
    url = store.copy(name)
    started = time.time()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--plan", url, "due"],
            env=_env(url),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    parts = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = time.time() - started
    cpu = _children_cpu()["cpu_s"]
    if any(p.returncode for p in procs):
        raise SystemExit("a planner process failed")
    digests, duplicates, lost = _outcome(url)
    store.drop(name)
    return {
        "subscribers": count,
        "workers": workers,
        "seconds": round(wall, 2),
        "cpu_s": cpu,
        "per_s": round(count / wall, 1),
        "planned_by_each": [p["planned"] for p in parts],
        "digests": digests,
        "duplicates": duplicates,
        "lost": lost,
    }


def _outcome(url: str) -> tuple[int, int, int]:
    """Digests written, (subscriber, period) pairs written twice, subscribers without one."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            digests = conn.execute(text("SELECT count(*) FROM digest")).scalar_one()
            pairs = conn.execute(
                text("SELECT count(*) FROM (SELECT DISTINCT subscriber_id, period FROM digest) d")
            ).scalar_one()
            lost = conn.execute(
                text(
                    "SELECT count(*) FROM subscriber s WHERE NOT EXISTS "
                    "(SELECT 1 FROM digest d WHERE d.subscriber_id = s.id)"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    return int(digests), int(digests) - int(pairs), int(lost)


# --- the run ----------------------------------------------------------------------------


@contextmanager
def seeded(kind: str, count: int, folder: Path) -> Iterator[tuple[Store, dict[str, float]]]:
    """A store seeded with N subscribers, dropped afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    store = Store(kind, folder, template=f"cycle_tpl_{count}")
    url = store.create(store.template)
    timing = seed(url, count, datetime.now(UTC))
    try:
        yield store, timing
    finally:
        store.drop(store.template)


def measure_size(kind: str, count: int, phases: set[str], folder: Path) -> dict[str, Any]:
    """Every phase asked for, at one size, on one database."""
    row: dict[str, Any] = {"db": kind, "subscribers": count, "load_before": os.getloadavg()}
    with seeded(kind, count, folder) as (store, timing):
        row["seed"] = timing
        if "plan" in phases:
            row["plan"] = measure_plan(store, count)
            _show(row, "plan")
        if "send" in phases:
            sink = Sink()
            try:
                row["send"] = measure_send(store, count, sink, folder)
                _show(row, "send")
                if "raw" in phases and row["send"]["accepted"]:
                    row["raw"] = measure_raw(row["send"]["accepted"], sink, folder)
                    row["ratio"] = round(row["send"]["per_s"] / row["raw"]["per_s"], 3)
                    _show(row, "raw")
            finally:
                sink.close()
        if "workers" in phases and kind == "postgres":
            one = measure_workers(store, count, 1)
            two = measure_workers(store, count, 2)
            row["workers"] = {
                "one": one,
                "two": two,
                "speedup": round(one["seconds"] / two["seconds"], 2),
                "cpu_ratio": round(two["cpu_s"] / one["cpu_s"], 2) if one["cpu_s"] else None,
            }
            _show(row, "workers")
    row["load_after"] = os.getloadavg()
    return row


def _show(row: dict[str, Any], phase: str) -> None:
    print(f"{row['db']} {row['subscribers']:,} {phase}: {json.dumps(row[phase])}", flush=True)


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a plain-text table."""
    head = (
        f"{'db':<9}{'N':>8}{'plan/s':>9}{'plan/cpu-s':>11}{'send/s':>8}{'raw/s':>7}{'ratio':>7}"
        f"{'first s':>8}{'last s':>8}{'RSS send':>9}{'RSS sink':>9}{'B/digest':>9}"
        f"{'1w s':>7}{'2w s':>7}{'2w/1w':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        plan, send, raw = r.get("plan", {}), r.get("send", {}), r.get("raw", {})
        workers = r.get("workers", {})
        cells = [
            f"{r['db']:<9}{r['subscribers']:>8,}",
            _cell(plan.get("per_s"), 9),
            _cell(plan.get("per_cpu_s"), 11),
            _cell(send.get("per_s"), 8),
            _cell(raw.get("per_s"), 7),
            _cell(r.get("ratio"), 7),
            _cell(send.get("first_message_s"), 8),
            _cell(send.get("last_message_s"), 8),
            _cell(send.get("peak_rss_mib"), 9),
            _cell(send.get("sink_peak_rss_mib"), 9),
            _cell(send.get("database_bytes_per_digest"), 9),
            _cell(workers.get("one", {}).get("seconds"), 7),
            _cell(workers.get("two", {}).get("seconds"), 7),
            _cell(workers.get("speedup"), 7),
        ]
        lines.append("".join(cells))
    return "\n".join(lines)


def _cell(value: object, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width},.2f}" if value < 10 else f"{value:>{width},.0f}"
    return f"{value!s:>{width}}"


def profile(count: int, kind: str, out: Path) -> None:
    """cProfile the dry-run planner at N subscribers; print the top of the profile."""
    import pstats

    with tempfile.TemporaryDirectory() as tmp, seeded(kind, count, Path(tmp)) as (store, _):
        url = store.url(store.template)
        run = run_process(
            [sys.executable, __file__, "--plan", url, "dry", "--profile-out", str(out)], _env(url)
        )
        print(run["out"].strip())
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(45)


def main() -> None:
    """Parse arguments, run every measurement, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k subscribers on SQLite")
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgres"), default=["sqlite"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 100_000])
    parser.add_argument("--only", nargs="+", choices=PHASES, default=list(PHASES))
    parser.add_argument("--profile", type=int, metavar="N", help="profile the planner at N")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--plan", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument("--raw", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink_main(args.sink)
    elif args.plan:
        plan_child(args.plan[0], args.plan[1], args.profile_out)
    elif args.raw:
        raw_child(int(args.raw[0]), args.raw[1], int(args.raw[2]))
    elif args.profile:
        profile(args.profile, args.db[0], Path(tempfile.gettempdir()) / "cycle-plan.prof")
    else:
        run_all(args)


def run_all(args: argparse.Namespace) -> None:
    """Every database and size asked for; the table, and the JSON unless ``--quick``."""
    sizes = [1_000] if args.quick else args.sizes
    rows = []
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.db:
            for count in sizes:
                folder = Path(tmp) / f"{kind}-{count}"
                rows.append(measure_size(kind, count, set(args.only), folder))
                print(table(rows[-1:]), flush=True)
    print(table(rows))
    if args.quick:
        return
    report = {
        "benchmark": "cycle",
        "command": "python bench/cycle.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": load,
            "load_average_at_end": os.getloadavg(),
        },
        "concurrency": CONCURRENCY,
        "papers": 1000,
        "definitions": {
            "send.per_s": "messages the sink accepted / (last accept - command start)",
            "ratio": "send.per_s / raw.per_s, measured one after the other in the same run",
            "plan.per_s": "subscribers / planner seconds (send --now --dry-run's work)",
            "database_bytes_per_digest": "database growth during the send / digests queued",
            "workers": "planner processes as mailer worker runs them, on copies of one due set",
        },
        "runs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
