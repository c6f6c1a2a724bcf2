"""Planning cost of the learned ranking (issue 18): voters against keyword-only subscribers.

The whole planner (``mailer.pipeline.plan.DigestPlanner``) on a real SQLite database, from the
first query to the last outbox row written: 1,000 new papers in the window (resampled from the
bundled sample, as ``bench/matching.py`` makes them), yesterday's 1,000 in the store, and N
subscribers with random profiles. 10% of them hold 20 votes each (a mix of "more" and "less"
on yesterday's papers). Three runs, each on a fresh copy of the same database, alternating:

- ``keyword``: the planner without the learned ranking (what main does);
- ``learning, no votes``: the learned ranking on, the votes table empty (non-voters' cost);
- ``learning``: the learned ranking on, 10% voters.

The space is fitted once per process and store version; its fit is reported on its own and
done before the timed runs (a daemon pays it once per fetch, not per run), and so is the first
learning run, which also vectorises the window's papers and the voted ones (kept per process).
A voter's per-subscriber cost = keyword / N plus what the learned digest adds over the keyword
digest it replaces, measured paired (each voter both ways, back to back, summed, median of
three rounds after a warm-up, CPU time like the runs, wall time reported beside it): the
difference of whole runs is below their noise on a shared machine (it is reported too). The
goal is at most 1.5x keyword.

That steady state is not a whole day, though: a daemon fits a new space after every fetch,
so each day's first learning run turns the window's papers and every voted paper into vectors
again. ``after_fetch_voter_over_keyword`` charges that run's extra CPU over a keyword run to
the voters (one run, so noisier; the window's share is paid once whoever votes).

    python bench/learning_cost.py                 # 5,000 subscribers
    python bench/learning_cost.py --subscribers 1000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
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
from sqlalchemy import insert, select  # noqa: E402

from mailer.context import PlanOptions  # noqa: E402
from mailer.db import papers as paper_repo  # noqa: E402
from mailer.db.migrate import upgrade  # noqa: E402
from mailer.db.papers import upsert_papers  # noqa: E402
from mailer.db.session import make_engine, make_session_factory  # noqa: E402
from mailer.db.tables import FeedbackRow, PaperRow, SubscriberRow  # noqa: E402
from mailer.matching import PaperIndex, parse_profile  # noqa: E402
from mailer.pipeline.learning import SPACES, Learner  # noqa: E402
from mailer.pipeline.plan import DigestPlanner  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "learning_cost.json"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
VOTES = 20
VOTER_SHARE = 0.10


def build(path: Path, subscribers: int) -> tuple[int, int]:
    """The database: two days of papers, subscribers, and the voters' votes (returns counts)."""
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    sample = load_sample()
    rng = random.Random(SEED)
    days = [make_batch(sample, rng), make_batch(sample, rng)]
    with sessions.begin() as session:
        for day, (batch, seen) in enumerate(
            zip(days, (NOW - timedelta(hours=30), NOW - timedelta(hours=2)), strict=True)
        ):
            papers = [replace(p, id=None, key=f"day{day}:{i:05d}") for i, p in enumerate(batch)]
            upsert_papers(session, papers, seen)
    maker = ProfileMaker(sample, SEED + 1)
    joined = NOW - timedelta(hours=20)
    rows = [
        {"email": f"s{n}@example.org", "status": "active", "profile": maker.profile(),
         "frequency": "daily", "send_time": "08:00", "timezone": "UTC", "weekday": 0,
         "next_due_at": NOW - timedelta(hours=1), "created_at": joined, "confirmed_at": joined,
         "hard_bounces": 0, "soft_bounces": 0}
        for n in range(subscribers)
    ]  # fmt: skip
    with sessions.begin() as session:
        session.execute(insert(SubscriberRow), rows)
        ids = list(session.scalars(select(SubscriberRow.id).order_by(SubscriberRow.id)))
        yesterday = list(
            session.execute(select(PaperRow.id, PaperRow.key).where(PaperRow.key.like("day0:%")))
        )
        voters = rng.sample(ids, int(len(ids) * VOTER_SHARE))
        votes = [
            {"subscriber_id": sid, "paper_id": pid, "key": key, "vote": rng.choice((1, 1, -1)),
             "origin": "email", "at": NOW - timedelta(hours=10)}
            for sid in voters
            for pid, key in rng.sample(yesterday, VOTES)
        ]  # fmt: skip
        session.execute(insert(FeedbackRow), votes)
    engine.dispose()
    return len(ids), len(voters)


def run(path: Path, *, learning: bool, drop_votes: bool) -> dict[str, float]:
    """One planning run on a fresh copy of the database."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "run.db"
        shutil.copy(path, copy)
        engine = make_engine(f"sqlite:///{copy}")
        sessions = make_session_factory(engine)
        if drop_votes:
            with sessions.begin() as session:
                session.query(FeedbackRow).delete()
        planner = DigestPlanner(
            sessions,
            new_message_id=lambda: f"<{random.random()}@bench>",
            options=PlanOptions(),
            learner=Learner() if learning else None,
        )
        started, cpu = time.perf_counter(), time.process_time()
        report = planner.run(now=NOW, force=False, dry_run=False)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
    return {"wall_s": wall, "cpu_s": cpu, "queued": report.queued}


def warm_space(path: Path) -> float:
    """Fit the store's space once (as a daemon does after a fetch); its time in seconds."""
    engine = make_engine(f"sqlite:///{path}")
    started = time.perf_counter()
    with make_session_factory(engine)() as session:
        SPACES.get(session)
    engine.dispose()
    return time.perf_counter() - started


def paired(path: Path, rounds: int = 3) -> dict[str, float]:
    """Each voter's digest both ways, back to back (the runs' difference drowns in noise):
    the keyword engine's digest against the learned one, summed over voters, in ms each.

    CPU time, like the runs it is added to (wall time beside it): on a shared machine the
    wall clock also counts the time other processes held the core."""
    engine = make_engine(f"sqlite:///{path}")
    sessions = make_session_factory(engine)
    with sessions() as session:
        papers = paper_repo.papers_first_seen(session, NOW - timedelta(hours=3), NOW)
        index = PaperIndex(papers)
        ids = list(session.scalars(select(SubscriberRow.id)))
        profiles = dict(session.execute(select(SubscriberRow.id, SubscriberRow.profile)).all())
        learner = Learner()
        learner.load(session, ids)
        voters = [i for i in ids if learner.has_examples(i)]
        parsed = {i: parse_profile(profiles[i]) for i in voters}
        sums: dict[str, list[float]] = {k: [] for k in ("keyword", "learned", "kw_wall", "ln_wall")}
        for _ in range(rounds + 1):  # the first round fills the caches and is not kept
            spent = dict.fromkeys(sums, 0.0)
            for i in voters:
                cpu, wall = time.process_time(), time.perf_counter()
                _ = index.digest(parsed[i], frozenset(), 25).matches
                cpu_mid, wall_mid = time.process_time(), time.perf_counter()
                learner.digest(session, i, index, parsed[i], exclude=frozenset(), limit=25)
                spent["keyword"] += cpu_mid - cpu
                spent["learned"] += time.process_time() - cpu_mid
                spent["kw_wall"] += wall_mid - wall
                spent["ln_wall"] += time.perf_counter() - wall_mid
            for key, value in spent.items():
                sums[key].append(value)
    engine.dispose()
    per = {k: statistics.median(v[1:]) / len(voters) * 1e3 for k, v in sums.items()}
    return {
        "keyword_digest_ms": per["keyword"],
        "learned_digest_ms": per["learned"],
        "keyword_digest_wall_ms": per["kw_wall"],
        "learned_digest_wall_ms": per["ln_wall"],
    }


def main() -> None:
    """Build, measure alternately, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        count, voters = build(path, args.subscribers)
        fit = warm_space(path)
        # The first run after a fetch also turns the new papers and the voted ones into
        # vectors (kept per process and space): measured once here, then the steady state.
        first = run(path, learning=True, drop_votes=False)
        variants = {
            "keyword": {"learning": False, "drop_votes": False},
            "learning, no votes": {"learning": True, "drop_votes": True},
            "learning": {"learning": True, "drop_votes": False},
        }
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for _ in range(args.repeat):
            for name, kwargs in variants.items():
                runs[name].append(run(path, **kwargs))
        pair = paired(path)
    median = {name: statistics.median(r["cpu_s"] for r in rows) for name, rows in runs.items()}
    keyword_each = median["keyword"] / count
    # A voter costs a keyword subscriber's planning plus what the learned digest adds over
    # the keyword digest it replaces (paired, so machine noise cancels).
    extra = (pair["learned_digest_ms"] - pair["keyword_digest_ms"]) / 1e3
    voter_each = keyword_each + extra
    summary: dict[str, Any] = {
        "subscribers": count,
        "voters": voters,
        "votes_each": VOTES,
        "space_fit_s": round(fit, 3),
        "first_run_after_fetch_cpu_s": round(first["cpu_s"], 3),
        "cpu_s_median": {k: round(v, 3) for k, v in median.items()},
        "keyword_ms_per_subscriber": round(keyword_each * 1e3, 3),
        "voter_ms_per_subscriber": round(voter_each * 1e3, 3),
        "voter_over_keyword": round(voter_each / keyword_each, 2),
        "paired_digest_ms": {k: round(v, 3) for k, v in pair.items()},
        "after_fetch_voter_over_keyword": round(
            ((first["cpu_s"] - median["keyword"]) / voters + keyword_each) / keyword_each, 2
        ),
        "runs_voter_over_keyword": round(
            ((median["learning"] - median["keyword"]) / voters + keyword_each) / keyword_each, 2
        ),
        "non_voters_over_keyword": round(median["learning, no votes"] / median["keyword"], 3),
        "goal": "voter <= 1.5x keyword per subscriber; non-voters unchanged",
        "runs": runs,
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
        "python": platform.python_version(),
        "note": "CPU seconds of the planning process (medians of alternating runs); shared machine",
    }
    print(f"{count} subscribers, {voters} voters with {VOTES} votes each; space fit {fit:.2f} s; "
          f"first learning run after a fetch {first['cpu_s']:.2f} s CPU")  # fmt: skip
    print("variant               cpu s (median)   wall s (runs)")
    for name in variants:
        walls = " ".join(f"{r['wall_s']:.2f}" for r in runs[name])
        print(f"{name:22} {median[name]:14.3f}   {walls}")
    print(f"paired, per voter: keyword digest {pair['keyword_digest_ms']:.3f} ms, learned digest "
          f"{pair['learned_digest_ms']:.3f} ms CPU (wall {pair['keyword_digest_wall_ms']:.3f}, "
          f"{pair['learned_digest_wall_ms']:.3f})")  # fmt: skip
    print(f"keyword {summary['keyword_ms_per_subscriber']} ms/subscriber; voter "
          f"{summary['voter_ms_per_subscriber']} ms ({summary['voter_over_keyword']}x); "
          f"non-voters {summary['non_voters_over_keyword']}x; whole runs "
          f"{summary['runs_voter_over_keyword']}x; first run after a fetch "
          f"{summary['after_fetch_voter_over_keyword']}x")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
