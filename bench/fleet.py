"""The whole cycle as deployed: N real ``mailer worker`` processes on one database, to a sink.

What each worker does at start (``mailer/daemon/run.py``): it does not migrate (the seeded
store is at head already); it checks ``MAILER_SOURCES`` and schedules its jobs, all due at
once and run one at a time behind the worker's job lock: ``fetch`` (here ``file:`` an empty
JSON-lines file: no network, no paper added, one fetch row recorded), ``prune`` (retention
90 days: nothing in a fresh store is that old, one short DELETE pass) and ``due`` (plan the
due subscribers in chunks claimed ``FOR UPDATE SKIP LOCKED`` while sending what is planned,
rendering in ``MAILER_RENDER_PROCESSES`` spawned children; then every 60 s). No bounce job:
``MAILER_BOUNCE_MAILBOX`` is unset. So the run measures planning, rendering and sending.

The clock starts when the first worker is started. The database is polled every second: on
PostgreSQL the digest table's insert counter (``pg_stat_user_tables``, free) until it nears
N, then an exact count, so "planned" is exact to a second without scanning a million rows
every second. The sink is asked for its count every second. Done is: a digest row for every
subscriber, the sink holding as many messages as rows are ``sent`` and none ``pending``,
``sending`` or ``retry``. Then every worker gets SIGTERM and must exit 0 within
``STOP_BOUND_S``. ``timeout`` stops the run early; its report is marked incomplete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backends import BackendWatch
from cycle_store import Store
from processes import PeakWatch
from sink import Sink

POLL_S = 1.0
PROGRESS_S = 30.0
STOP_BOUND_S = 60.0  # a worker finishes its in-flight sends, then exits
STALLED_S = 10.0  # the sink idle this long: look at the outbox for what is left
EXACT_FROM = 0.95  # of N: from here "planned" is an exact count
OPEN = ("pending", "sending", "retry")

Checkpoint = Callable[[dict[str, Any]], None]


@dataclass
class Fleet:
    """What one fleet run needs: where, how many, and how to start a worker."""

    store: Store
    count: int
    workers: int
    command: list[str]
    env: Callable[[str, int], dict[str, str]]  # (database URL, sink port) -> environment
    folder: Path
    timeout: float
    checkpoint: Checkpoint


@dataclass
class Progress:
    """Figures gathered while the fleet runs, every one from the first worker's start."""

    started: float
    planned: int = 0
    planned_s: float | None = None
    queued: int | None = None  # rows to send (not skipped), known once planning is done
    accepted: int = 0
    first_s: float | None = None
    last_s: float | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.time() - self.started


class Outbox:
    """Cheap readings of one database's outbox while workers write to it."""

    def __init__(self, url: str, count: int) -> None:
        from sqlalchemy import create_engine

        self.count = count
        self.postgres = url.startswith("postgresql")
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")

    def _scalar(self, query: str) -> int:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return int(conn.execute(text(query)).scalar_one() or 0)

    def planned(self) -> int:
        """Digest rows written: the insert counter until near N, then an exact count."""
        if self.postgres:
            inserted = self._scalar(
                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'digest'"
            )
            if inserted < EXACT_FROM * self.count:
                return inserted
        return self._scalar("SELECT count(*) FROM digest")

    def to_send(self) -> int:
        return self._scalar("SELECT count(*) FROM digest WHERE status <> 'skipped'")

    def still_open(self) -> int:
        """Rows that are still to be sent (pending, being sent, waiting for a retry)."""
        return self._scalar(
            "SELECT count(*) FROM digest WHERE status IN ('pending', 'sending', 'retry')"
        )

    def by_status(self) -> dict[str, int]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM digest GROUP BY status"))
            return {str(status): int(n) for status, n in rows}

    def outcome(self) -> dict[str, int]:
        """Duplicate (subscriber, period) pairs, subscribers without a digest, rows not sent."""
        return {
            "duplicate_pairs": self._scalar(
                "SELECT count(*) - (SELECT count(*) FROM"
                " (SELECT DISTINCT subscriber_id, period FROM digest) d) FROM digest"
            ),
            "subscribers_without_digest": self._scalar(
                "SELECT count(*) FROM subscriber s WHERE NOT EXISTS"
                " (SELECT 1 FROM digest d WHERE d.subscriber_id = s.id)"
            ),
            "digests_not_sent": self._scalar(
                "SELECT count(*) FROM digest WHERE status NOT IN ('sent', 'skipped')"
            ),
            "papers": self._scalar("SELECT count(*) FROM paper"),  # the seeded 1,000: none added
        }

    def close(self) -> None:
        self.engine.dispose()


def measure_fleet(fleet: Fleet) -> dict[str, Any]:
    """N ``mailer worker`` processes from the first one's start to the last accepted message."""
    name = f"fleet_{fleet.count}_{fleet.workers}"
    url = fleet.store.copy(name)
    before = fleet.store.database_bytes(name)
    digest_before = fleet.store.bytes_of_digests(name)
    sink = Sink()
    env = fleet.env(url, sink.port) | {"MAILER_SOURCES": f"file:{_no_papers(fleet)}"}
    outbox = Outbox(url, fleet.count)
    database = BackendWatch(url) if url.startswith("postgresql") else None
    load_before = os.getloadavg()
    sink_cpu = sink.cpu_seconds()
    progress = Progress(started=time.time())
    procs, watches = _start(fleet, env)
    result: dict[str, Any] = {"subscribers": fleet.count, "workers": fleet.workers}
    try:
        complete = _follow(fleet, procs, sink, outbox, progress, result)
    finally:
        stops = _stop(procs)
    peek = sink.dump(fleet.folder / f"fleet-{fleet.workers}")
    sink_cpu = sink.cpu_seconds() - sink_cpu
    digests = outbox.by_status()
    result |= {
        "complete": complete,
        **_figures(progress, peek),
        "digests": digests,
        "sink_matches_sent": peek["count"] == digests.get("sent", 0),
        **outbox.outcome(),
        "duplicate_message_ids": peek["duplicate_message_ids"],
        "duplicate_recipients": peek["duplicate_recipients"],
        "stops": stops,
        "workers_exit_0": all(s["exit"] == 0 for s in stops),
        "processes": [_tree(w) for w in watches],
        "worker_log_tails": [_log_tail(fleet, n) for n in range(fleet.workers)],
        "sink": _sink_figures(sink, sink_cpu, progress),
        "postgres": database.stop() if database else None,
        "mean_message_bytes": peek["mean_bytes"],
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "timeline": progress.timeline,
    }
    outbox.close()
    sink.close()
    after, digest_after = fleet.store.database_bytes(name), fleet.store.bytes_of_digests(name)
    fleet.store.drop(name)
    sent = max(1, result["digests"].get("sent", 0))
    result |= {
        "database_bytes_added": after - before,
        "database_bytes_per_sent_digest": round((after - before) / sent, 1),
        "digest_tables_bytes_per_sent_digest": round((digest_after - digest_before) / sent, 1),
    }
    return result


def _no_papers(fleet: Fleet) -> Path:
    """An empty ``file:`` source: the worker's fetch at start reads it and adds nothing."""
    path = fleet.folder / "no-papers.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _start(fleet: Fleet, env: dict[str, str]) -> tuple[list[subprocess.Popen[bytes]], list[Any]]:
    """Start the workers (their logs in the run's folder), each watched with its children."""
    procs, watches = [], []
    for n in range(fleet.workers):
        log = (fleet.folder / f"worker-{fleet.workers}-{n}.log").open("wb")
        proc = subprocess.Popen(fleet.command, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()  # the child has its own descriptor
        procs.append(proc)
        watches.append(PeakWatch(proc.pid))
    return procs, watches


def _follow(
    fleet: Fleet,
    procs: list[subprocess.Popen[bytes]],
    sink: Sink,
    outbox: Outbox,
    progress: Progress,
    result: dict[str, Any],
) -> bool:
    """Poll until the cycle is done (True), or the timeout or a dead worker ends it (False)."""
    next_line = PROGRESS_S
    last_change = time.time()
    while True:
        time.sleep(POLL_S)
        elapsed = progress.elapsed()
        if progress.planned_s is None:
            progress.planned = outbox.planned()
            if progress.planned >= fleet.count:
                progress.planned_s = elapsed
                progress.queued = outbox.to_send()
        accepted = sink.peek(fleet.folder / "peek")
        if accepted["count"] != progress.accepted:
            last_change = time.time()
        _note_accepted(progress, accepted)
        if elapsed >= next_line:
            next_line += PROGRESS_S
            _report_progress(fleet, outbox, progress, result)
        if _done(progress, outbox, time.time() - last_change):
            return True
        if elapsed >= fleet.timeout or any(p.poll() is not None for p in procs):
            return False


def _note_accepted(progress: Progress, accepted: dict[str, Any]) -> None:
    progress.accepted = accepted["count"]
    if accepted["count"]:
        progress.first_s = accepted["first"] - progress.started
        progress.last_s = accepted["last"] - progress.started


def _done(progress: Progress, outbox: Outbox, idle_s: float) -> bool:
    """Every row written and none left to send: checked in the database once the sink has as
    many messages as there are rows to send, or has been idle a while (retries, stragglers,
    a failed row). Whether the sink's count matches the rows sent is reported, not waited for.
    """
    if progress.queued is None:
        return False
    if progress.accepted < progress.queued and idle_s < STALLED_S:
        return False
    return outbox.still_open() == 0


def _report_progress(
    fleet: Fleet, outbox: Outbox, progress: Progress, result: dict[str, Any]
) -> None:
    """A progress line, and the figures so far handed to ``checkpoint`` (a partial JSON)."""
    sent = outbox.by_status().get("sent", 0)  # a scan, but only every PROGRESS_S
    line = {
        "elapsed_s": round(progress.elapsed(), 1),
        "planned": progress.planned,
        "sent": sent,
        "accepted": progress.accepted,
        "load": os.getloadavg()[0],
    }
    progress.timeline.append(line)
    print(f"fleet {fleet.workers}w {fleet.count:,}: {json.dumps(line)}", flush=True)
    fleet.checkpoint(result | {"complete": False, **_figures(progress, None)})


def _figures(progress: Progress, dump: dict[str, Any] | None) -> dict[str, Any]:
    last = progress.last_s
    return {
        "planned": progress.planned,
        "planned_s": _round(progress.planned_s),
        "planned_per_s": round(progress.planned / progress.planned_s, 1)
        if progress.planned_s
        else None,
        "queued": progress.queued,
        "accepted": dump["count"] if dump else progress.accepted,
        "first_message_s": _round(progress.first_s),
        "last_message_s": _round(last),
        "per_s": round(progress.accepted / last, 1) if last else None,
        "elapsed_s": round(progress.elapsed(), 2),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _stop(procs: list[subprocess.Popen[bytes]]) -> list[dict[str, Any]]:
    """SIGTERM every worker; each one's exit code and seconds to exit (killed past the bound)."""
    asked = time.time()
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    stops: list[dict[str, Any]] = []
    for proc in procs:
        try:
            code = proc.wait(timeout=max(0.1, STOP_BOUND_S - (time.time() - asked)))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            stops.append({"exit": code, "seconds": None, "killed": True})
            continue
        stops.append({"exit": code, "seconds": round(time.time() - asked, 2), "killed": False})
    return stops


def _log_tail(fleet: Fleet, n: int, lines: int = 5) -> list[str]:
    """The last lines a worker logged (warnings and errors: MAILER_LOG_LEVEL is WARNING)."""
    path = fleet.folder / f"worker-{fleet.workers}-{n}.log"
    return path.read_text(errors="replace").splitlines()[-lines:]


def _tree(watch: PeakWatch) -> dict[str, Any]:
    """One worker and each of its children (render processes, the spawn helper) separately."""
    watch.stop()
    each = watch.each()
    worker: dict[str, Any] = each[0] if each else {"peak_rss_mib": 0.0, "cpu_s": 0.0}
    return {
        "peak_rss_mib": worker["peak_rss_mib"],
        "cpu_s": worker["cpu_s"],
        "children": each[1:],
    }


def _sink_figures(sink: Sink, cpu: float, progress: Progress) -> dict[str, Any]:
    """The sink's memory and CPU: its share of one core to the last message says whether the
    single aiosmtpd process could be what limits the rate."""
    span = progress.last_s or progress.elapsed()
    return {
        "peak_rss_mib": round(sink.peak_rss_mib(), 1),
        "cpu_s": round(cpu, 2),
        "cpu_share_of_one_core": round(cpu / span, 2) if span else None,
    }


def compare_fleets(
    fleet: Fleet, counts: list[int], partial: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """One fleet run per worker count asked for (SQLite: one worker only, DESIGN §7)."""
    if fleet.store.kind == "sqlite":
        counts = [1]
    runs: dict[str, Any] = {}
    for n in counts:
        done = dict(runs)

        def checkpoint(part: dict[str, Any], done: dict[str, Any] = done, n: int = n) -> None:
            partial(done | {f"{n}w": part})

        runs[f"{n}w"] = measure_fleet(replace(fleet, workers=n, checkpoint=checkpoint))
        partial(runs)
    one, two = runs.get("1w"), runs.get("2w")
    if one and two and one.get("last_message_s") and two.get("last_message_s"):
        runs["speedup_last_message"] = round(one["last_message_s"] / two["last_message_s"], 2)
        if one.get("planned_s") and two.get("planned_s"):
            runs["speedup_planned"] = round(one["planned_s"] / two["planned_s"], 2)
    return runs


def fleet_table(rows: list[dict[str, Any]]) -> str:
    """The fleet runs as a plain-text table: one line per worker count."""
    head = (
        f"{'db':<9}{'N':>8}{'workers':>8}{'planned s':>10}{'first s':>8}{'last s':>8}"
        f"{'sent/s':>8}{'dup':>5}{'lost':>6}{'exit 0':>7}{'RSS wkr':>8}{'RSS rnd':>8}"
        f"{'RSS sink':>9}{'RSS pg':>7}{'B/dig':>7}{'done':>6}"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        for key, run in row.get("fleet", {}).items():
            if not key.endswith("w"):
                continue
            lines.append(_fleet_line(row, run))
    return "\n".join(lines)


def _fleet_line(row: dict[str, Any], run: dict[str, Any]) -> str:
    workers = run.get("processes", [])
    renders = [
        c["peak_rss_mib"] for w in workers for c in w["children"] if "spawn_main" in c["command"]
    ]
    duplicates = (
        run.get("duplicate_pairs", 0)
        + run.get("duplicate_message_ids", 0)
        + run.get("duplicate_recipients", 0)
    )
    lost = run.get("subscribers_without_digest", 0) + run.get("digests_not_sent", 0)
    postgres = run.get("postgres") or {}
    cells = [
        f"{row['db']:<9}{row['subscribers']:>8,}{run['workers']:>8}",
        _cell(run.get("planned_s"), 10),
        _cell(run.get("first_message_s"), 8),
        _cell(run.get("last_message_s"), 8),
        _cell(run.get("per_s"), 8),
        _cell(duplicates, 5),
        _cell(lost, 6),
        _cell("yes" if run.get("workers_exit_0") else "NO", 7),
        _cell(max((w["peak_rss_mib"] for w in workers), default=None), 8),
        _cell(max(renders, default=None), 8),
        _cell(run.get("sink", {}).get("peak_rss_mib"), 9),
        _cell(postgres.get("backend_peak_rss_mib"), 7),
        _cell(run.get("database_bytes_per_sent_digest"), 7),
        _cell("yes" if run.get("complete") else "NO", 6),
    ]
    return "".join(cells)


def _cell(value: object, width: int) -> str:
    if value is None:
        return f"{'-':>{width}}"
    if isinstance(value, float):
        return f"{value:>{width},.2f}" if value < 10 else f"{value:>{width},.0f}"
    return f"{value!s:>{width}}"
