"""Bytes per delivered digest over several days, through the outbox's real write path.

Each simulated day: 1,000 new papers; one planned digest per subscriber (about 20 papers,
``bench/storage.py``'s synthetic plan) written by ``insert_digests`` in chunks of 500, each
subscriber's next due instant moved on (``set_next_due``, as the planner does); then every
pending row claimed in batches of 100 (``outbox.claim``: pending -> sending) and recorded
sent with a 250 reply (``outbox.record``: sending -> sent), as ``mailer send`` writes them.
Sizes are read after the day's sending (what a bench of one run sees: dead row versions
included) and, with ``--vacuum``, after a plain ``VACUUM`` (what autovacuum leaves for the
next day: dead versions' space reusable, not returned); with ``--retention D`` the worker's
daily ``mailer prune`` runs after each day's sending (the size must stay flat after D days).
The steady state is a day's growth once the previous day's dead versions' space is reused.

    BENCH_DB_PREFIX=me_ python bench/outbox_days.py --subscribers 5000 --days 4 --vacuum
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from matching import SEED  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from storage import NOW, REPLY, _plan, add_papers, add_subscribers, write  # noqa: E402

from mailer.db.digests import insert_digests  # noqa: E402
from mailer.db.migrate import upgrade  # noqa: E402
from mailer.db.outbox import Outcome, claim, record  # noqa: E402
from mailer.db.session import make_engine, make_session_factory  # noqa: E402
from mailer.db.subscribers import set_next_due  # noqa: E402
from mailer.models import DigestStatus  # noqa: E402

PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "bench_")
TABLES = ("digest", "digest_profile", "subscriber")


def relation_sizes(engine: Engine) -> dict[str, int]:
    """Bytes of every relation behind the per-digest tables: heap, TOAST, each index."""
    query = text(
        "SELECT c.relname, pg_relation_size(c.oid) FROM pg_class c"
        " WHERE c.relname = ANY(:t)"
        " UNION ALL SELECT i.relname, pg_relation_size(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid"
        " WHERE c.relname = ANY(:t)"
        " UNION ALL SELECT c.relname || ' (toast)', pg_total_relation_size(c.reltoastrelid)"
        " FROM pg_class c WHERE c.relname = ANY(:t) AND c.reltoastrelid <> 0"
    )
    with engine.connect() as connection:
        return {str(n): int(s) for n, s in connection.execute(query, {"t": list(TABLES)})}


def heap_stats(engine: Engine) -> dict[str, Any]:
    """pgstattuple of the digest heap: live and dead tuple bytes, free space."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT table_len, tuple_count, tuple_len, dead_tuple_count, dead_tuple_len,"
                " free_space FROM pgstattuple('digest')"
            )
        ).one()
    return dict(row._asdict())


def send_all(engine: Engine, day_now: Any) -> int:
    """Claim every due row in batches of 100 and record each one sent, as a worker does."""
    sessions = make_session_factory(engine)
    sent = 0
    while True:
        with sessions() as session:
            batch = claim(session, day_now, day_now + timedelta(minutes=5), 100)
        if not batch.digests:
            return sent
        outcomes = [
            Outcome(digest=d, status=DigestStatus.SENT, code=250, reply=REPLY)
            for d in batch.digests
        ]
        with engine.connect() as connection:
            record(connection, outcomes, day_now + timedelta(seconds=30), 1)
        sent += len(outcomes)


def run(
    url: str, subscribers: int, days: int, vacuum: bool, retention: int | None
) -> list[dict[str, Any]]:
    upgrade(url)
    engine = make_engine(url)
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
    sessions = make_session_factory(engine)
    rng = random.Random(SEED)
    start = NOW - timedelta(days=days)
    add_subscribers(engine, subscribers, SEED + 1, start - timedelta(days=1))
    with engine.connect() as connection:
        people = connection.execute(text("SELECT id, profile FROM subscriber ORDER BY id")).all()
    voters = set(rng.sample([int(p[0]) for p in people], subscribers // 10))
    with admin.connect() as connection:
        connection.execute(text("VACUUM ANALYZE"))
    rows: list[dict[str, Any]] = []
    before = relation_sizes(engine)
    for day in range(days):
        now = start + timedelta(days=day)
        add_papers(engine, day, now - timedelta(hours=2), rng)
        with engine.connect() as connection:
            arrived = list(
                connection.execute(
                    text("SELECT id FROM paper WHERE key LIKE :k ORDER BY id"), {"k": f"day{day}:%"}
                ).scalars()
            )
        plans = [_plan(int(s), str(p), int(s) in voters, arrived, now, rng) for s, p in people]
        cpu = time.process_time()
        for begin in range(0, len(plans), 500):
            with sessions.begin() as session:
                chunk = plans[begin : begin + 500]
                insert_digests(session, chunk, now)
                set_next_due(session, {p.subscriber_id: now + timedelta(days=1) for p in chunk})
        sent = send_all(engine, now)
        cpu = time.process_time() - cpu
        after_send = relation_sizes(engine)
        stats = heap_stats(engine)
        row: dict[str, Any] = {
            "day": day + 1,
            "sent": sent,
            "client_cpu_s": round(cpu, 2),
            "grown_after_send": {
                k: after_send[k] - before.get(k, 0)
                for k in after_send
                if after_send[k] != before.get(k, 0)
            },
            "bytes_per_sent_after_send": round(
                (sum(after_send.values()) - sum(before.values())) / max(sent, 1)
            ),
            "digest_heap": stats,
        }
        if retention is not None:  # the worker's daily prune, an hour after the day's sending
            from mailer.ops.prune import prune

            row["pruned"] = prune(
                sessions, retention_days=retention, now=now + timedelta(hours=1)
            ).digests
        if vacuum:
            with admin.connect() as connection:
                connection.execute(text("VACUUM (ANALYZE) digest, digest_profile, subscriber"))
        before = relation_sizes(engine)
        row["total_after_vacuum"] = sum(before.values())
        row["sizes"] = before
        rows.append(row)
        print(
            f"day {day + 1}: sent {sent}, grew {row['bytes_per_sent_after_send']} B/digest;"
            f" total {sum(before.values()) / 1e6:.2f} MB"
            f" ({sum(before.values()) / max(1, sent * (day + 1)):.0f} B per digest sent so far);"
            f" pruned {row.get('pruned', 0)};"
            f" heap live {stats['tuple_len'] / max(stats['tuple_count'], 1):.0f} B/row,"
            f" dead {stats['dead_tuple_len'] / 1e6:.2f} MB,"
            f" free {stats['free_space'] / 1e6:.2f} MB",
            flush=True,
        )
    engine.dispose()
    admin.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--vacuum", action="store_true", help="VACUUM after each day's sending")
    parser.add_argument(
        "--retention", type=int, help="run `mailer prune` with this retention after each day"
    )
    parser.add_argument("--output", default="outbox-days.json")
    args = parser.parse_args()
    name = f"{DB_PREFIX}outbox_days"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        rows = run(url, args.subscribers, args.days, args.vacuum, args.retention)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    last = rows[-1]
    stored = last["total_after_vacuum"] / max(1, sum(r["sent"] for r in rows))
    print(f"steady: {stored:.0f} B of digest tables per stored digest after {args.days} days")
    write(
        args.output,
        {
            "measurement": "outbox-days",
            "subscribers": args.subscribers,
            "days": args.days,
            "vacuum": args.vacuum,
            "retention_days": args.retention,
            "rows": rows,
            "bytes_per_stored_digest": round(stored),
        },
    )


if __name__ == "__main__":
    main()
