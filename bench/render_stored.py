"""Render the 20k cycle bench's planned digests in-process: CPU per digest and a hash of the bytes.

Diagnosis for issue 17 (``bench/cycle.py`` stays the figure). Seeds the cycle bench's SQLite
database (20,000 subscribers, 1,000 papers) once into ``--folder``, plans it once (the outbox
rows a ``send --now`` would render), and then renders the first ``--digests`` rows exactly as a
render process does (``load_digests``, ``render_digest``, ``wire_message``), with a fixed clock
and MIME boundary so that the bytes can be compared across trees:

    python bench/render_stored.py --folder /tmp/render20k             # CPU ms a digest + sha256
    python bench/render_stored.py --folder /tmp/render20k --profile   # and the top of cProfile

The planned database is reused when it is there (plan it with one tree, render with both).
Prints a table and the sha256 of every wire message in id order; writes no JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cycle import SECRET, SENDER  # noqa: E402
from cycle_store import seed  # noqa: E402

from mailer.config import Settings  # noqa: E402
from mailer.context import Context, make_context  # noqa: E402
from mailer.db import digests as digest_repo  # noqa: E402
from mailer.db.session import make_engine, make_session_factory  # noqa: E402
from mailer.mail import _fast  # noqa: E402

FIXED_NOW = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)


def planned_database(folder: Path, count: int) -> str:
    """The URL of a seeded and planned database, made on first use."""
    planned = folder / f"planned_{count}.db"
    if not planned.exists():
        from mailer.pipeline.plan import plan

        folder.mkdir(parents=True, exist_ok=True)
        work = folder / f"seeding_{count}.db"
        work.unlink(missing_ok=True)
        url = f"sqlite:///{work}"
        seed(url, count, datetime.now(UTC))
        plan(_context(url, fixed=False), force=True)  # the papers arrived "now"
        shutil.move(work, planned)
    return f"sqlite:///{planned}"


def _context(url: str, *, fixed: bool = True) -> Context:
    settings = Settings(database_url=url, secret_key=SECRET, MAILER_FROM=SENDER)
    sessions = make_session_factory(make_engine(url))
    if not fixed:
        return make_context(settings, sessions)
    return make_context(settings, sessions, clock=lambda: FIXED_NOW)


def outbox_ids(ctx: Context, limit: int) -> list[int]:
    from sqlalchemy import text

    with ctx.session_factory() as session:
        rows = session.execute(text("SELECT id FROM digest ORDER BY id LIMIT :n"), {"n": limit})
        return [int(row[0]) for row in rows]


def render_pass(ctx: Context, ids: list[int], chunk: int) -> tuple[float, float, str, int]:
    """CPU seconds loading, CPU seconds rendering + serialising, sha256 of the bytes, bytes."""
    from mailer.pipeline.render import render_digest, wire_message

    papers = digest_repo.PaperCache()
    ctx.renderer.clear_caches()
    sha = hashlib.sha256()
    load_cpu = render_cpu = 0.0
    size = 0
    for start in range(0, len(ids), chunk):
        began = time.process_time()
        with ctx.session_factory() as session:
            loaded = digest_repo.load_digests(session, ids[start : start + chunk], papers)
        loaded_at = time.process_time()
        for digest_id in sorted(loaded):
            data = wire_message(ctx, render_digest(ctx, loaded[digest_id])).data
            sha.update(data)
            size += len(data)
        render_cpu += time.process_time() - loaded_at
        load_cpu += loaded_at - began
    return load_cpu, render_cpu, sha.hexdigest(), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--digests", type=int, default=5_000)
    parser.add_argument("--chunk", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    _fast._BOUNDARY = "=_mailer_fixed"  # bytes comparable
    url = planned_database(args.folder, args.subscribers)
    ctx = _context(url)
    ids = outbox_ids(ctx, args.digests)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        render_pass(ctx, ids, args.chunk)
        profiler.disable()
        profiler.dump_stats(str(args.folder / "render.prof"))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    results = [render_pass(ctx, ids, args.chunk) for _ in range(args.rounds)]
    hashes = {r[2] for r in results}
    n = len(ids)
    load_ms = statistics.median(r[0] for r in results) * 1000 / n
    render_ms = statistics.median(r[1] for r in results) * 1000 / n
    print(f"{n} digests, {args.rounds} rounds, mean {results[0][3] / n:,.0f} bytes")
    print(f"load+explain {load_ms:.3f} ms  render+links+wire {render_ms:.3f} ms  (CPU, median)")
    print(f"runs: {[round(r[1] * 1000 / n, 3) for r in results]}")
    print(f"sha256 {' '.join(sorted(hashes))}")


if __name__ == "__main__":
    main()
