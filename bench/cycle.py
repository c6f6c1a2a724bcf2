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
            ``pg_total_relation_size`` of digest and digest_profile);
  raw       in the same run, the wire's limit: real messages of that send (the first 200 the
            sink accepted, so the same mean size), pre-serialised, blasted through
            ``SmtpTransport`` over the same number of connections to the same sink;
  workers   (PostgreSQL) the planner that ``mailer worker`` runs, 1 process vs 2 on copies of
            the same due set: wall and CPU seconds, digests written, duplicates, subscribers
            left without a digest;
  fleet     the real thing (``bench/fleet.py``): N ``mailer worker`` processes (``--workers``;
            SQLite: 1) on one copy of the due set, sending to a fresh sink: time until every
            subscriber has a digest row, to the first and last accepted message, digests/s,
            duplicates (a (subscriber, period) twice, a Message-ID or recipient accepted twice),
            lost (no digest, not sent), each worker's and each render process's peak RSS and
            CPU, the sink's and PostgreSQL's, bytes per digest; then SIGTERM, each worker must
            exit 0. A progress line every 30 s and the JSON rewritten as it goes (``--timeout``
            stops a run and marks it incomplete).

    python bench/cycle.py --quick                       # 1k on SQLite, a smoke run
    python bench/cycle.py --db sqlite --sizes 10000 20000
    python bench/cycle.py --db postgres --sizes 100000 --only plan workers
    python bench/cycle.py --db postgres --sizes 20000 --only fleet --workers 1 2
    python bench/cycle.py --db postgres --sizes 1000000 --only fleet --workers 2 --timeout 7200
    python bench/cycle.py --profile 20000               # cProfile of the planner (dry run)

Prints a table and writes bench/results/cycle.json (``--quick`` writes nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from backends import BackendWatch  # noqa: E402
from cycle_store import Store, seed  # noqa: E402
from fleet import Fleet, compare_fleets, fleet_table  # noqa: E402
from processes import children_cpu, run_process  # noqa: E402
from sink import Sink  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "cycle.json"
# Prefixes every database this bench creates, so runs on a shared server do not drop each
# other's databases (the names are otherwise fixed by size).
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "")
CONCURRENCY = 4  # MAILER_SMTP_CONCURRENCY's default
SENDER = "Paper Digest <digest@example.org>"
SECRET = "bench-secret-key-0123456789abcdef"
PHASES = ("plan", "send", "raw", "workers", "fleet")
Partial = Callable[[dict[str, Any]], None]


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
    began = time.time()
    wall, cpu = time.perf_counter(), time.process_time()
    with tuning.tuned():
        if profiler is not None:
            profiler.enable()
        report = plan(ctx, force=mode == "dry", dry_run=mode == "dry")
        if profiler is not None:
            profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ended = time.time()
    import resource

    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if profiler is not None and profile_out:
        profiler.dump_stats(profile_out)
    planned = report.queued + report.no_match + report.no_papers + report.combined
    engine = engine_alone(ctx.session_factory) if mode == "dry" else {}
    print(
        json.dumps(
            {
                **engine,
                "planned": planned,
                "queued": report.queued,
                "no_match": report.no_match,
                "already_planned": report.already_planned,
                "seconds": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "peak_rss_mib": round(peak_rss_mib, 1),
                "began": began,
                "ended": ended,
                "lines_checksum": _checksum(report.lines),
            }
        )
    )


def engine_alone(sessions: Any) -> dict[str, float]:
    """The physical limit of planning: the matching engine alone over the same profiles and
    papers (load each stored profile, rank, explain the top 25), CPU seconds in this process.
    """
    from sqlalchemy import select

    from mailer.daemon import tuning
    from mailer.db.papers import to_paper
    from mailer.db.tables import PaperRow, SubscriberRow
    from mailer.matching import PaperIndex, parse_profile
    from mailer.matching.stored import load_stored

    with sessions() as session:
        papers = [to_paper(row) for row in session.scalars(select(PaperRow))]
        query = select(SubscriberRow.profile, SubscriberRow.profile_compiled)
        profiles = session.execute(query.order_by(SubscriberRow.id)).all()
    cpu = time.process_time()
    index = PaperIndex(papers)
    built = time.process_time()
    with tuning.tuned():
        listed = 0
        for text, compiled in profiles:
            profile = load_stored(compiled, text) or parse_profile(text)
            listed += len(index.digest(profile, frozenset(), 25).matches)  # explained lazily
    done = time.process_time()
    return {
        "engine_index_cpu_s": round(built - cpu, 3),
        "engine_cpu_s": round(done - built, 3),
        "engine_listed": listed,
    }


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
        # The same profiles through the engine alone (index built once, as the planner does).
        "engine_cpu_s": child["engine_cpu_s"],
        "engine_per_cpu_s": round(count / child["engine_cpu_s"], 1),
        "engine_index_cpu_s": child["engine_index_cpu_s"],
        "planner_vs_engine_cpu": round(
            child["cpu_s"] / (child["engine_cpu_s"] + child["engine_index_cpu_s"]), 2
        ),
        "process_s": round(run["seconds"], 2),
        "peak_rss_mib": run["peak_rss_mib"],
        "checksum": child["lines_checksum"],
    }


def measure_send(store: Store, count: int, sink: Sink, folder: Path) -> dict[str, Any]:
    """``mailer send --now`` from its start to the last message the sink accepted."""
    name = f"{DB_PREFIX}send_{count}"
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
    name = f"{DB_PREFIX}workers_{count}_{workers}"
    url = store.copy(name)
    watch = BackendWatch(url)
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
    cpu = children_cpu()["cpu_s"]
    database = watch.stop()
    # From the first planner's start to the last one's end: planning, not process start-up.
    span = max(p["ended"] for p in parts) - min(p["began"] for p in parts)
    if any(p.returncode for p in procs):
        raise SystemExit("a planner process failed")
    digests, duplicates, lost = _outcome(url)
    size = store.database_bytes(name)
    store.drop(name)
    return {
        "subscribers": count,
        "workers": workers,
        "seconds": round(span, 2),
        "process_s": round(wall, 2),
        "cpu_s": cpu,
        "plan_cpu_s": round(sum(p["cpu_s"] for p in parts), 2),
        "per_s": round(count / span, 1),
        "planned_by_each": [p["planned"] for p in parts],
        "peak_rss_mib_each": [p["peak_rss_mib"] for p in parts],
        **database,
        # Both cores busy the whole time with the work of this run: the best wall time.
        "cpu_bound_s": round((sum(p["cpu_s"] for p in parts) + database["backend_cpu_s"]) / 2, 2),
        "database_bytes": size,
        "load_average": os.getloadavg(),
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
    store = Store(kind, folder, template=f"{DB_PREFIX}cycle_tpl_{count}")
    url = store.create(store.template)
    timing = seed(url, count, datetime.now(UTC))
    try:
        yield store, timing
    finally:
        store.drop(store.template)


def measure_size(
    kind: str,
    count: int,
    phases: set[str],
    folder: Path,
    args: argparse.Namespace,
    partial: Partial,
) -> dict[str, Any]:
    """Every phase asked for, at one size, on one database (``partial``: the row so far)."""
    workers = args.workers
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
            row["workers"] = compare_workers(store, count, workers)
            _show(row, "workers")
        if "fleet" in phases:
            fleet = Fleet(store, count, 1, [_mailer(), "worker"], _env, folder, args.timeout, print)
            row["fleet"] = compare_fleets(
                fleet, workers, lambda runs: partial(row | {"fleet": runs})
            )
            _show(row, "fleet")
    row["load_after"] = os.getloadavg()
    return row


def compare_workers(store: Store, count: int, workers: list[int]) -> dict[str, Any]:
    """1 planner process against 2 on copies of one due set (or only the counts asked for)."""
    runs = {n: measure_workers(store, count, n) for n in workers}
    found: dict[str, Any] = {{1: "one", 2: "two"}.get(n, str(n)): run for n, run in runs.items()}
    if 1 in runs and 2 in runs:
        one, two = runs[1], runs[2]
        found["speedup"] = round(one["seconds"] / two["seconds"], 2)
        found["cpu_ratio"] = round(two["cpu_s"] / one["cpu_s"], 2) if one["cpu_s"] else None
        # The best 2 workers can do here: 1 worker's CPU (planner + its backend) on 2 cores.
        found["limit_s"] = one["cpu_bound_s"]
        found["speedup_limit"] = round(one["seconds"] / one["cpu_bound_s"], 2)
    return found


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


def profile(count: int, kind: str, mode: str, out: Path) -> None:
    """cProfile the planner at N subscribers (``mode``: dry or due); print the top of it."""
    import pstats

    with tempfile.TemporaryDirectory() as tmp, seeded(kind, count, Path(tmp)) as (store, _):
        url = store.url(store.template)
        run = run_process(
            [sys.executable, __file__, "--plan", url, mode, "--profile-out", str(out)], _env(url)
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
    parser.add_argument(
        "--profile-mode", choices=("dry", "due"), default="dry", help="what --profile runs"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="planner process counts the workers phase runs (default 1 2; 1M: --workers 2)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds after which a fleet run stops its workers and reports (incomplete)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--plan", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    parser.add_argument("--raw", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plan:
        plan_child(args.plan[0], args.plan[1], args.profile_out)
    elif args.raw:
        raw_child(int(args.raw[0]), args.raw[1], int(args.raw[2]))
    elif args.profile:
        out = Path(tempfile.gettempdir()) / "cycle-plan.prof"
        profile(args.profile, args.db[0], args.profile_mode, out)
    else:
        run_all(args)


def run_all(args: argparse.Namespace) -> None:
    """Every database and size asked for; the table, and the JSON unless ``--quick``."""
    sizes = [1_000] if args.quick else args.sizes
    rows: list[dict[str, Any]] = []
    load = os.getloadavg()

    def partial(row: dict[str, Any]) -> None:  # a run cut off still leaves its figures
        if not args.quick:
            _write(args, _report(args, [*rows, row], load, complete=False))

    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.db:
            for count in sizes:
                folder = Path(tmp) / f"{kind}-{count}"
                phases = set(args.only)
                rows.append(measure_size(kind, count, phases, folder, args, partial))
                print(table(rows[-1:]), flush=True)
                if not args.quick:
                    _write(args, _report(args, rows, load, complete=False))
    print(table(rows))
    if any("fleet" in row for row in rows):
        print(fleet_table(rows))
    if args.quick:
        return
    _write(args, _report(args, rows, load, complete=True))
    print(f"wrote {args.out}")


def _report(
    args: argparse.Namespace, rows: list[dict[str, Any]], load: tuple[float, ...], complete: bool
) -> dict[str, Any]:
    return {
        "benchmark": "cycle",
        "command": "python bench/cycle.py " + " ".join(sys.argv[1:]),
        "complete": complete,  # False: written while running, or the run was cut off
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
            "fleet": "N mailer worker processes on one database to a sink; every time is from"
            " the first worker's start; per_s = accepted / last_message_s",
        },
        "runs": rows,
    }


def _write(args: argparse.Namespace, report: dict[str, Any]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(".json.tmp")
    partial.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    partial.replace(args.out)  # a reader never sees half a file


if __name__ == "__main__":
    main()
