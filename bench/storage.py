"""Storage per delivered digest, and a 120-day retention simulation (issue 17, item 6).

Two measurements, each printing a table and writing JSON to ``bench/results/``:

``per-digest`` (default): the real planner (``DigestPlanner``) plans N subscribers with random
1-6-interest profiles (``bench/matching.py``'s maker) against 1,000 new papers resampled from
the bundled sample; every pending digest is then marked sent as the sender marks it (status,
sent_at, 250 reply). Bytes per delivered digest = growth of the database / digests sent,
skipped rows included (they are written too). SQLite: pages in use (page count minus free
pages, after a WAL checkpoint). PostgreSQL: ``pg_total_relation_size`` summed over the tables
(heap, TOAST, indexes) after ``VACUUM ANALYZE``, in a database of its own.

``simulate``: 120 days at 10,000 daily subscribers: every day 1,000 new papers arrive, each
subscriber gets a digest of ~20 of them (scores as the engine gives them, 10% of readers with
learned values) written through the real ``insert_digests`` with the simulated day as clock,
then marked sent, then ``mailer prune`` runs with the simulated day as clock. Prints the
database size every 10 days: digest storage must stay flat after day 90 (retention), while
the paper store grows with the papers the sources publish (never pruned: it is the catalogue).

    python bench/storage.py per-digest --subscribers 5000 [--postgres URL]
    python bench/storage.py simulate --subscribers 10000 --days 120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from matching import SEED, ProfileMaker, load_sample, make_batch  # noqa: E402
from sqlalchemy import Engine, insert, text, update  # noqa: E402

from mailer.context import PlanOptions  # noqa: E402
from mailer.db.digests import (  # noqa: E402
    PaperCache,
    PlannedDigest,
    insert_digests,
    load_digests,
)
from mailer.db.migrate import upgrade  # noqa: E402
from mailer.db.papers import upsert_papers  # noqa: E402
from mailer.db.session import make_engine, make_session_factory  # noqa: E402
from mailer.db.tables import DigestRow, SubscriberRow  # noqa: E402
from mailer.models import DigestNote, DigestStatus, Match, Paper, Period  # noqa: E402
from mailer.pipeline.plan import DigestPlanner  # noqa: E402

RESULTS = ROOT / "bench" / "results"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
REPLY = "250 2.0.0 Ok: queued as 4XkQ2m0d3Sz9fVb"


def used_bytes(engine: Engine) -> int:
    """Bytes the database holds now (SQLite: pages in use; PostgreSQL: all relations)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            pages = connection.execute(text("PRAGMA page_count")).scalar_one()
            free = connection.execute(text("PRAGMA freelist_count")).scalar_one()
            size = connection.execute(text("PRAGMA page_size")).scalar_one()
            return int((pages - free) * size)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
        return int(
            connection.execute(
                text(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            ).scalar_one()
        )


def table_bytes(engine: Engine) -> dict[str, int]:
    """Bytes per table with its indexes (SQLite: the dbstat table; PostgreSQL: relation sizes)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            rows = connection.execute(
                text(
                    "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s"
                    " LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY 1"
                )
            ).all()
        else:
            rows = connection.execute(
                text(
                    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                )
            ).all()
    return {str(name): int(size) for name, size in rows}


def add_subscribers(engine: Engine, count: int, seed: int, joined: datetime) -> None:
    """``count`` active daily subscribers with random profiles, due at ``joined`` + 1 day."""
    maker = ProfileMaker(load_sample(), seed)
    rows = [
        {"email": f"s{n}@example.org", "status": "active", "profile": maker.profile(),
         "frequency": "daily", "send_time": "08:00", "timezone": "UTC", "weekday": 0,
         "next_due_at": joined + timedelta(hours=20), "created_at": joined,
         "confirmed_at": joined, "hard_bounces": 0, "soft_bounces": 0}
        for n in range(count)
    ]  # fmt: skip
    with make_session_factory(engine).begin() as session:
        session.execute(insert(SubscriberRow), rows)


def add_papers(engine: Engine, day: int, seen: datetime, rng: random.Random) -> None:
    """One day's 1,000 papers, resampled from the bundled sample."""
    batch = make_batch(load_sample(), rng)
    papers = [replace(p, id=None, key=f"day{day}:{i:05d}") for i, p in enumerate(batch)]
    with make_session_factory(engine).begin() as session:
        upsert_papers(session, papers, seen)


def mark_sent(engine: Engine, at: datetime) -> int:
    """Mark every pending digest sent, as the sender does after the server's 250."""
    with engine.begin() as connection:
        result = connection.execute(
            update(DigestRow)
            .where(DigestRow.status == "pending")
            .values(
                status="sent",
                sent_at=at,
                attempts=1,
                last_code=250,
                last_reply=REPLY,
                lease_until=None,
            )
        )
    return int(result.rowcount)


def load_cost(engine: Engine, skip: int) -> tuple[float, float]:
    """Seconds to load the second day's digests as the sender does: batches of 100, one cache.

    Loading is where why each paper matched comes back (decoded, or re-matched): the cost a
    sender pays per digest on top of rendering.
    """
    with engine.connect() as connection:
        ids = list(
            connection.execute(
                text("SELECT id FROM digest WHERE paper_count > 0 ORDER BY id OFFSET :n")
                if engine.dialect.name != "sqlite"
                else text(
                    "SELECT id FROM digest WHERE paper_count > 0 ORDER BY id LIMIT -1 OFFSET :n"
                ),
                {"n": skip},
            ).scalars()
        )
    cache = PaperCache()
    sessions = make_session_factory(engine)
    started, cpu = time.perf_counter(), time.process_time()
    for begin in range(0, len(ids), 100):
        with sessions() as session:
            load_digests(session, ids[begin : begin + 100], cache)
    return time.perf_counter() - started, time.process_time() - cpu


def per_digest(url: str, subscribers: int) -> dict[str, Any]:
    """Bytes per delivered digest on its second day, planned by the real planner on ``url``.

    The first day stores what each subscriber pays once (the compiled profile, the profile
    text a digest is explained from); the second day's growth is what every later day costs.
    """
    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(SEED)
    add_subscribers(engine, subscribers, SEED + 1, NOW - timedelta(days=2))
    planner = DigestPlanner(
        make_session_factory(engine),
        new_message_id=lambda: f"<{random.getrandbits(96):024x}.{time.time_ns()}@mailer.example>",
        options=PlanOptions(),
    )
    yesterday = NOW - timedelta(days=1)
    add_papers(engine, 0, yesterday - timedelta(hours=2), rng)
    planner.run(now=yesterday, force=False, dry_run=False)
    mark_sent(engine, yesterday + timedelta(minutes=5))
    add_papers(engine, 1, NOW - timedelta(hours=2), rng)
    before, tables_before = used_bytes(engine), table_bytes(engine)
    with engine.connect() as connection:
        counted = connection.execute(text("SELECT count(*), sum(paper_count) FROM digest")).one()
    started, cpu = time.perf_counter(), time.process_time()
    report = planner.run(now=NOW, force=False, dry_run=False)
    plan_wall, plan_cpu = time.perf_counter() - started, time.process_time() - cpu
    sent = mark_sent(engine, NOW + timedelta(minutes=5))
    after, tables_after = used_bytes(engine), table_bytes(engine)
    load_wall, load_cpu = load_cost(engine, counted[0])
    with engine.connect() as connection:
        total = connection.execute(text("SELECT count(*), sum(paper_count) FROM digest")).one()
    engine.dispose()
    rows = (total[0] - counted[0], (total[1] or 0) - (counted[1] or 0))
    grown = {
        name: tables_after.get(name, 0) - tables_before.get(name, 0)
        for name in sorted(set(tables_after) | set(tables_before))
        if tables_after.get(name, 0) != tables_before.get(name, 0)
    }
    return {
        "backend": "sqlite" if url.startswith("sqlite") else "postgresql",
        "subscribers": subscribers,
        "digests": int(rows[0]),
        "delivered": sent,
        "listed_papers": int(rows[1] or 0),
        "papers_per_delivered": round(int(rows[1] or 0) / max(sent, 1), 1),
        "bytes_grown": after - before,
        "bytes_per_delivered": round((after - before) / max(sent, 1)),
        "grown_by_table": grown,
        "load_wall_s": round(load_wall, 2),
        "load_cpu_s": round(load_cpu, 2),
        "plan_wall_s": round(plan_wall, 2),
        "plan_cpu_s": round(plan_cpu, 2),
        "queued": report.queued,
    }


def per_digest_main(args: argparse.Namespace) -> None:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(per_digest(f"sqlite:///{Path(tmp) / 'storage.db'}", args.subscribers))
    if args.postgres:
        runs.append(per_digest(args.postgres, args.subscribers))
    print(
        f"{'backend':<11} {'delivered':>9} {'papers/digest':>13} {'grown MB':>9} {'B/digest':>9}"
        f" {'plan cpu s':>10} {'load cpu s':>10}"
    )
    for run in runs:
        print(
            f"{run['backend']:<11} {run['delivered']:>9} {run['papers_per_delivered']:>13}"
            f" {run['bytes_grown'] / 1e6:>9.1f} {run['bytes_per_delivered']:>9}"
            f" {run['plan_cpu_s']:>10} {run['load_cpu_s']:>10}"
        )
        for name, size in run["grown_by_table"].items():
            print(f"    {name:<28} {size / max(run['delivered'], 1):>8.0f} B/digest")
    write(args.output, {"measurement": "per-digest", "runs": runs})


def simulate(url: str, subscribers: int, days: int, retention: int) -> list[dict[str, Any]]:
    """``days`` of daily digests to ``subscribers`` with a prune each day; sizes every 10 days."""
    from mailer.ops.prune import prune  # here: the other measurements also run on main

    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    start = NOW - timedelta(days=days)
    rng = random.Random(SEED)
    add_subscribers(engine, subscribers, SEED + 1, start - timedelta(days=1))
    with engine.connect() as connection:
        people = connection.execute(text("SELECT id, profile FROM subscriber ORDER BY id")).all()
    profiles = {int(sid): str(profile) for sid, profile in people}
    voters = set(rng.sample(sorted(profiles), subscribers // 10))
    rows: list[dict[str, Any]] = []
    for day in range(days):
        now = start + timedelta(days=day)
        add_papers(engine, day, now - timedelta(hours=2), rng)
        with engine.connect() as connection:
            arrived = list(
                connection.execute(
                    text("SELECT id FROM paper WHERE key LIKE :k ORDER BY id"), {"k": f"day{day}:%"}
                ).scalars()
            )
        for sid in rng.sample(sorted(profiles), max(1, subscribers // 1000)):  # a few edits
            profiles[sid] += f", topic {day}"
        started, cpu = time.perf_counter(), time.process_time()
        plans = [_plan(sid, profiles[sid], sid in voters, arrived, now, rng) for sid in profiles]
        with sessions.begin() as session:
            for begin in range(0, len(plans), 500):
                insert_digests(session, plans[begin : begin + 500], now)
        insert_s, insert_cpu = time.perf_counter() - started, time.process_time() - cpu
        mark_sent(engine, now + timedelta(minutes=10))
        started = time.perf_counter()
        report = prune(sessions, retention_days=retention, now=now + timedelta(hours=1))
        prune_s = time.perf_counter() - started
        if day % 10 == 9 or day == days - 1 or day == 0:
            tables = table_bytes(engine)
            with engine.connect() as connection:
                digests = connection.execute(text("SELECT count(*) FROM digest")).scalar_one()
            row = {
                "day": day + 1,
                "bytes": used_bytes(engine),
                "digest_bytes": tables.get("digest", 0) + tables.get("digest_profile", 0),
                "paper_bytes": tables.get("paper", 0),
                "digests": int(digests),
                "pruned_today": report.digests,
                "insert_s": round(insert_s, 2),
                "insert_cpu_s": round(insert_cpu, 2),
                "prune_s": round(prune_s, 2),
            }
            rows.append(row)
            print(
                f"day {row['day']:>4} {row['bytes'] / 1e6:>9.1f} {row['digest_bytes'] / 1e6:>9.1f}"
                f" {row['paper_bytes'] / 1e6:>9.1f} {row['digests']:>9} {row['pruned_today']:>7}"
                f" {row['insert_s']:>8} {row['prune_s']:>7}",
                flush=True,
            )
    engine.dispose()
    return rows


def _plan(
    sid: int, profile: str, voter: bool, arrived: list[int], now: datetime, rng: random.Random
) -> PlannedDigest:
    """A digest like the planner's: ~20 of the day's papers (15% of days none), scores falling."""
    period = Period.parse(now.date().isoformat())
    count = 0 if rng.random() < 0.15 else min(25, max(1, int(rng.gauss(20, 5))))
    chosen = rng.sample(arrived, count)
    scores = sorted((rng.uniform(0.5, 3.5) for _ in chosen), reverse=True)
    matches = tuple(
        Match(
            Paper(key=str(pid), title="", id=pid),
            score,
            (),
            learned=rng.gauss(0, 1) if voter else None,
            resembles=("A liked paper on " + profile[:40]) if voter and i == count - 1 else None,
        )
        for i, (pid, score) in enumerate(zip(chosen, scores, strict=True))
    )
    return PlannedDigest(
        subscriber_id=sid,
        period=period,
        status=DigestStatus.PENDING if matches else DigestStatus.SKIPPED,
        note=None if matches else DigestNote.NO_MATCH,
        message_id=f"<{rng.getrandbits(96):024x}.{sid}@mailer.example>",
        matches=matches,
        matched_count=count + rng.randint(0, 30) if count else 0,
        considered_count=len(arrived),
        window_start=now - timedelta(days=1),
        window_end=now,
        **({"profile": profile} if _PLANS_CARRY_PROFILES else {}),
    )


_PLANS_CARRY_PROFILES = "profile" in PlannedDigest.__dataclass_fields__


def insert_main(args: argparse.Namespace) -> None:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(
            insert_cost(f"sqlite:///{Path(tmp) / 'insert.db'}", args.subscribers, args.rounds)
        )
    if args.postgres:
        runs.append(insert_cost(args.postgres, args.subscribers, args.rounds))
    for run in runs:
        print(
            f"{run['backend']:<11} {run['digests_per_round']} digests x {run['rounds']}:"
            f" wall {run['wall_s']} s, cpu {run['cpu_s']} s;"
            f" {run['digests_per_s_wall']} digests/s, {run['digests_per_cpu_s']} per cpu-s"
        )
    write(args.output, {"measurement": "insert", "runs": runs})


def simulate_main(args: argparse.Namespace) -> None:
    print(
        f"{'':>4} {'day':>4} {'total MB':>9} {'digest MB':>9} {'paper MB':>9} {'digests':>9}"
        f" {'pruned':>7} {'insert s':>8} {'prune s':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        rows = simulate(
            args.postgres or f"sqlite:///{Path(tmp) / 'simulate.db'}",
            args.subscribers,
            args.days,
            args.retention,
        )
    flat = [r for r in rows if r["day"] > args.retention]
    after = [r["digest_bytes"] for r in flat]
    growth = (max(after) - min(after)) / max(min(after), 1) if after else None
    steady = rows[-1]["digest_bytes"] / args.subscribers
    print(
        f"digest storage after day {args.retention}: min {min(after) / 1e6:.1f} MB,"
        f" max {max(after) / 1e6:.1f} MB ({(growth or 0) * 100:.1f} % apart);"
        f" steady state {steady / 1e3:.1f} KB per subscriber"
        if after
        else "fewer days than the retention: nothing to compare"
    )
    write(
        args.output,
        {
            "measurement": "simulate",
            "backend": "postgresql" if args.postgres else "sqlite",
            "subscribers": args.subscribers,
            "days": args.days,
            "retention_days": args.retention,
            "rows": rows,
            "digest_bytes_spread_after_retention": growth,
            "steady_state_bytes_per_subscriber": round(steady),
        },
    )


def insert_cost(url: str, subscribers: int, rounds: int) -> dict[str, Any]:
    """Seconds ``insert_digests`` takes for a day of planned digests (plans built beforehand)."""
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    rng = random.Random(SEED)
    add_subscribers(engine, subscribers, SEED + 1, NOW - timedelta(days=rounds + 1))
    with engine.connect() as connection:
        people = connection.execute(text("SELECT id, profile FROM subscriber")).all()
    walls, cpus = [], []
    for day in range(rounds):
        now = NOW - timedelta(days=rounds - day)
        add_papers(engine, day, now - timedelta(hours=2), rng)
        with engine.connect() as connection:
            arrived = list(
                connection.execute(
                    text("SELECT id FROM paper WHERE key LIKE :k"), {"k": f"day{day}:%"}
                ).scalars()
            )
        plans = [_plan(sid, profile, False, arrived, now, rng) for sid, profile in people]
        started, cpu = time.perf_counter(), time.process_time()
        with sessions.begin() as session:
            for begin in range(0, len(plans), 500):  # the planner's chunk
                insert_digests(session, plans[begin : begin + 500], now)
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    engine.dispose()
    listed = subscribers * rounds
    return {
        "backend": "sqlite" if url.startswith("sqlite") else "postgresql",
        "digests_per_round": subscribers,
        "rounds": rounds,
        "wall_s": [round(w, 3) for w in walls],
        "cpu_s": [round(c, 3) for c in cpus],
        "digests_per_s_wall": round(listed / sum(walls)),
        "digests_per_cpu_s": round(listed / sum(cpus)),
    }


def write(name: str, body: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    body.update(
        machine=platform.machine(),
        cpus=os.cpu_count(),
        load=os.getloadavg(),
        python=platform.python_version(),
        at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    path = RESULTS / name
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command")
    digest = sub.add_parser("per-digest", help="bytes per delivered digest")
    digest.add_argument("--subscribers", type=int, default=5000)
    digest.add_argument("--postgres", help="an empty PostgreSQL database URL to measure too")
    digest.add_argument("--output", default="storage.json")
    cost = sub.add_parser("insert", help="seconds insert_digests takes per day of digests")
    cost.add_argument("--subscribers", type=int, default=10_000)
    cost.add_argument("--rounds", type=int, default=3)
    cost.add_argument("--postgres", help="an empty PostgreSQL database URL to measure too")
    cost.add_argument("--output", default="storage-insert.json")
    sim = sub.add_parser("simulate", help="days of digests and daily prunes")
    sim.add_argument("--subscribers", type=int, default=10_000)
    sim.add_argument("--days", type=int, default=120)
    sim.add_argument("--retention", type=int, default=90)
    sim.add_argument("--postgres", help="an empty PostgreSQL database URL to run on instead")
    sim.add_argument("--output", default="storage-simulation.json")
    args = parser.parse_args()
    if args.command == "simulate":
        simulate_main(args)
    elif args.command == "insert":
        insert_main(args)
    else:
        per_digest_main(args)


if __name__ == "__main__":
    main()
