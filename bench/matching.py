"""Matching benchmark (issue 3): the batch engine vs a naive baseline, then the engine at scale.

Synthetic but realistic profiles are built from the vocabulary of the bundled sample
(mailer/data/sample_papers.jsonl): 1-6 interests of 1-3 words taken from real title n-grams or
drawn by word frequency, some quoted phrases, some exclusions, a few author:/cat: scopes. The
1,000-paper batch is built by resampling the sample: real titles, abstracts mixed from real
sentences, synthetic authors, categories and upvotes.

Each measurement runs in its own subprocess so peak RSS is that run's alone. Profiles stream in
as compiled JSON (as they are stored in the database); the timed part is loading the compiled
profile and matching: the full ranking plus Match objects (interests, words, spans) for the top
25. Generating the random profiles is not timed.

The baseline takes about 0.1 s per subscriber, so at 10k it is measured on a sample (the first
``--baseline-sample`` subscribers of the same 10k stream; it has no caches, so its rate does not
depend on how many run) and its 10k time extrapolated; the JSON and the table say so. Times are
wall-clock (``match_s``) with the process CPU time beside them (``match_cpu_s``): on a shared
machine the difference is time spent waiting for a core. ``cpu us/dig`` is CPU time per
digest over all workers, the figure a busy machine disturbs least; for a run on several workers
``cpu s`` is the busiest worker's, about the wall time on idle cores. Every kind streams under
the process tuning the planner runs under (``mailer.daemon.tuning.tuned``).

The scale runs (100k and 1M on 2 workers) rank and explain (``engine``, what a digest needs) as
well as rank only. Each worker generates at most ``--pool``/workers distinct profiles; the 100k
run's are all distinct, the 1M run's repeat about ten times each.

    python bench/matching.py                      # 10k engine + baseline, 100k and 1M engine
    python bench/matching.py --quick              # a smaller run for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.daemon.tuning import YOUNG_THRESHOLD, tuned  # noqa: E402
from mailer.matching import PaperIndex, Profile, parse_profile  # noqa: E402
from mailer.matching.baseline import NaiveMatcher  # noqa: E402
from mailer.models import Match, Paper  # noqa: E402

SAMPLE = ROOT / "mailer" / "data" / "sample_papers.jsonl"
RESULTS = ROOT / "bench" / "results" / "matching.json"
BATCH = 1000
LIMIT = 25  # MAILER_MAX_PAPERS
CHECKPOINTS = frozenset({100, 200, 500, 1_000, 2_000, 5_000, 10_000})
SEED = 20261122
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by can for from has have in into is it its of on or our over that "
        "the their these this to via we what when which while with without more most such than "
        "using based new how through both also all not only two one",
    )
)
FIRST = re.findall(r"\w+", "Wei Anna Sergey Maria Chen Ahmed Yuki Lucas Priya Omar Elena Jonas Mei")
# About 2,000 synthetic surnames, so author:name is as selective as a real surname.
SYLLABLES = re.findall(r"\w+", "ka ri mo le vin zha gar mul sa to no vak sin ro ssi ive co hen")
LAST = sorted({(a + b + c).title() for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES[:6]})
CATEGORIES = ["cs.LG", "cs.CL", "cs.CV", "cs.RO", "cs.AI", "stat.ML", "cs.NE", "eess.SY"]


def load_sample() -> list[dict[str, str]]:
    """The bundled sample papers (title and abstract)."""
    with SAMPLE.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def make_batch(sample: list[dict[str, str]], rng: random.Random) -> list[Paper]:
    """A 1,000-paper batch resampled from the sample: real titles, mixed real sentences."""
    sentences = [s for p in sample for s in re.split(r"(?<=\.)\s+", p["abstract"]) if s]
    batch = []
    for i in range(BATCH):
        base = rng.choice(sample)
        own = re.split(r"(?<=\.)\s+", base["abstract"])
        mixed = [s if rng.random() < 0.7 else rng.choice(sentences) for s in own]
        batch.append(
            Paper(
                key=f"bench:{i:05d}",
                id=i + 1,
                title=base["title"],
                abstract=" ".join(mixed),
                authors=tuple(
                    f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 5))
                ),
                categories=tuple(rng.sample(CATEGORIES, rng.randint(1, 2))),
                upvotes=int(rng.paretovariate(1.2)) - 1 if rng.random() < 0.8 else None,
            )
        )
    return batch


class ProfileMaker:
    """Random profiles from the sample's vocabulary: title n-grams and frequent words."""

    def __init__(self, sample: list[dict[str, str]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.titles = [self._words(p["title"]) for p in sample]
        counts = Counter(w for p in sample for w in self._words(p["title"] + " " + p["abstract"]))
        ranked = [w for w, n in counts.most_common(3000) if n >= 2]
        # Nobody subscribes to "learning" alone: single words come from below the most generic.
        self.generic = frozenset(ranked[:150])
        self.vocab = ranked[150:]
        self.weights = [counts[w] for w in self.vocab]
        self.common = ranked[:200]

    @staticmethod
    def _words(text: str) -> list[str]:
        """Lower-case content words of a text."""
        return [w for w in re.findall(r"[A-Za-z][A-Za-z0-9-]+", text.lower()) if w not in STOPWORDS]

    def interest(self) -> str:
        """One interest: a title n-gram (often quoted) or frequency-drawn words, or a scope."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.04:
            return f"author:{rng.choice(LAST).lower()}"
        if roll < 0.07:
            return f"cat:{rng.choice(CATEGORIES)}"
        size = rng.choice((1, 1, 2, 2, 2, 3))
        if roll < 0.6:
            title = [t for t in self.titles if len(t) >= size]
            words = rng.choice(title)
            start = rng.randrange(len(words) - size + 1)
            chosen = words[start : start + size]
            if size == 1 and chosen[0] in self.generic:
                chosen = rng.choices(self.vocab, self.weights, k=1)
        else:
            chosen = rng.choices(self.vocab, self.weights, k=size)
        text = " ".join(chosen)
        return f'"{text}"' if size > 1 and rng.random() < 0.3 else text

    def profile(self) -> str:
        """A whole profile: 1-6 interests, sometimes an exclusion."""
        rng = self.rng
        interests = [self.interest() for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.3:
            interests.append(f"-{rng.choice(self.common)}")
        if rng.random() < 0.05:
            interests.append('-"' + " ".join(rng.choice(self.titles)[:2]) + '"')
        if rng.random() < 0.01:
            interests = ["*", *interests[-1:]] if interests[-1].startswith("-") else ["*"]
        return ", ".join(interests)

    def stream(self, count: int, pool: int) -> Iterator[tuple[str, frozenset[int]]]:
        """(compiled profile JSON, already-sent ids) for ``count`` subscribers.

        At most ``pool`` distinct profiles are generated, here and now (generation is slow and
        untimed); beyond that, subscribers reuse them in random order.
        """
        compiled = [parse_profile(self.profile()).to_json() for _ in range(min(count, pool))]
        return _replay(compiled, count)


def _replay(compiled: list[str], count: int) -> Iterator[tuple[str, frozenset[int]]]:
    """Stream ``count`` subscribers over the generated profiles, one at a time (flat memory)."""
    # Its own generator: already-sent ids must not depend on how many profiles were made.
    rng = random.Random(SEED + 7)
    for n in range(count):
        text = compiled[n] if n < len(compiled) else rng.choice(compiled)
        sent: frozenset[int] = frozenset()
        if rng.random() < 0.05:
            sent = frozenset(rng.sample(range(1, BATCH + 1), 3))
        yield text, sent


def run_child(kind: str, subscribers: int, pool: int, part: int) -> dict[str, object]:
    """One measurement, in this process: build the matcher, stream subscribers, time matching."""
    sample = load_sample()
    batch = make_batch(sample, random.Random(SEED))
    started = time.perf_counter()
    engine = PaperIndex(batch) if kind != "baseline" else None
    naive = NaiveMatcher(batch) if kind == "baseline" else None
    build = time.perf_counter() - started
    timed = 0.0
    matched = listed = total = 0
    digest = 0
    checksums = {}
    matches: Sequence[Match] | Sequence[Paper]
    stream = ProfileMaker(sample, SEED + 1 + part).stream(subscribers, pool)
    cpu = time.process_time()
    with tuned():  # the process tuning the planner runs under
        for n, (compiled, sent) in enumerate(stream, 1):
            started = time.perf_counter()
            profile = Profile.from_json(compiled)
            if engine is not None:
                result = engine.digest(profile, sent, LIMIT)
                count = result.total
                matches = result.matches if kind == "engine" else result.papers
            else:
                assert naive is not None
                count, matches = naive.match(profile, sent, LIMIT)
            timed += time.perf_counter() - started
            matched += count > 0
            total += count
            listed += len(matches)
            keys = tuple(m.paper.key if isinstance(m, Match) else m.key for m in matches)
            digest = hash((digest, count, keys)) & 0xFFFFFFFFFFFF
            if n in CHECKPOINTS:
                checksums[str(n)] = digest
    # CPU time of the whole streaming loop (with its bookkeeping): an upper bound for matching.
    cpu = time.process_time() - cpu
    return {
        "kind": kind,
        "subscribers": subscribers,
        "distinct_profiles": min(subscribers, pool),
        "papers": len(batch),
        "index_build_s": round(build, 3),
        "match_s": round(timed, 3),
        "match_cpu_s": round(cpu, 3),
        "cpu_us_per_digest": round(cpu / subscribers * 1e6, 1) if subscribers else None,
        "digests_per_s": round(subscribers / timed, 1) if timed else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "subscribers_with_matches": matched,
        "mean_matches": round(total / subscribers, 2) if subscribers else 0,
        "mean_listed": round(listed / subscribers, 2) if subscribers else 0,
        "checksums": checksums,
    }


def measure(kind: str, subscribers: int, pool: int, workers: int = 1) -> dict[str, object]:
    """Run one measurement in fresh subprocesses (their own peak RSS), ``workers`` in parallel."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    load = os.getloadavg()
    share = subscribers // workers
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", kind, str(share), str(pool // workers), str(i)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(workers)
    ]
    parts = [json.loads(p.communicate()[0]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a {kind} measurement failed")
    if workers == 1:
        result: dict[str, object] = {**parts[0], "load_average_before": load}
        return result
    slowest = max(float(p["match_s"]) for p in parts)
    return {
        "kind": kind,
        "subscribers": subscribers,
        "workers": workers,
        "load_average_before": load,
        "distinct_profiles": sum(int(p["distinct_profiles"]) for p in parts),
        "match_s": round(slowest, 3),
        # The busiest worker's CPU time: the wall time the run would take on idle cores.
        "match_cpu_s": max(float(p["match_cpu_s"]) for p in parts),
        "cpu_us_per_digest": round(
            sum(float(p["match_cpu_s"]) for p in parts) / subscribers * 1e6, 1
        ),
        "index_build_s": max(float(p["index_build_s"]) for p in parts),
        "digests_per_s": round(subscribers / slowest, 1),
        "peak_rss_mb": max(float(p["peak_rss_mb"]) for p in parts),
        "peak_rss_mb_all_workers": round(sum(float(p["peak_rss_mb"]) for p in parts), 1),
        "mean_matches": round(sum(float(p["mean_matches"]) for p in parts) / workers, 2),
        "parts": parts,
    }


def table(rows: list[dict[str, object]]) -> str:
    """The results as a plain-text table."""
    head = (
        f"{'run':<10}{'subscribers':>12}{'workers':>8}{'match s':>10}{'cpu s':>9}"
        f"{'cpu us/dig':>11}{'digests/s':>12}{'peak RSS MB':>13}"
    )
    lines = [head, "-" * len(head)]
    notes = []
    for r in rows:
        kind = str(r["kind"])
        if "sampled_of" in r:
            kind += "*"
            notes.append(
                f"* measured on the first {r['subscribers']:,} of the {r['sampled_of']:,}; "
                f"{r['sampled_of']:,} extrapolated: {r['extrapolated_match_s']} s"
            )
        lines.append(
            f"{kind:<10}{r['subscribers']:>12,}{r.get('workers', 1):>8}{r['match_s']:>10}"
            f"{r['match_cpu_s']:>9}{r['cpu_us_per_digest']:>11}{r['digests_per_s']:>12,}"
            f"{r['peak_rss_mb']:>13}"
        )
    return "\n".join(lines + notes)


def _cpu_rate(row: dict[str, object]) -> float:
    """Subscribers per CPU second of a measurement."""
    return float(str(row["subscribers"])) / float(str(row["match_cpu_s"]))


def main() -> None:
    """Parse arguments, run every measurement, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="1k vs 1k, then 10k engine")
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=1_000,
        help="baseline subscribers actually run (of the 10k; 0 = all), the rest extrapolated",
    )
    parser.add_argument("--scale", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--pool", type=int, default=100_000, help="distinct profiles at most")
    parser.add_argument("--workers", type=int, default=2, help="processes for the scale runs")
    parser.add_argument(
        "--explain-max", type=int, default=1_000_000, help="largest run that also explains"
    )
    args = parser.parse_args()
    if args.child:
        kind, count, pool, part = args.child
        print(json.dumps(run_child(kind, int(count), int(pool), int(part))))
        return
    load_at_start = os.getloadavg()
    compare = 1_000 if args.quick else 10_000
    scale = [10_000] if args.quick else args.scale
    rows = [measure("engine", compare, compare), measure("ranked", compare, compare)]
    sample = min(args.baseline_sample or compare, compare)
    baseline = measure("baseline", sample, compare)
    if sample < compare:
        baseline["sampled_of"] = compare
        rate = float(baseline["digests_per_s"])  # type: ignore[arg-type]
        baseline["extrapolated_match_s"] = round(compare / rate, 1)
    rows.append(baseline)
    print(table(rows), flush=True)
    for n in scale:
        kinds = ["ranked", "engine"] if n <= args.explain_max else ["ranked"]
        rows += [measure(kind, n, args.pool, args.workers) for kind in kinds]
        print(table(rows[-len(kinds) :]), flush=True)
    speedup = float(rows[0]["digests_per_s"]) / float(baseline["digests_per_s"])  # type: ignore[arg-type]
    # The same ratio on CPU time, which a busy machine disturbs less than wall-clock time.
    speedup_cpu = _cpu_rate(rows[0]) / _cpu_rate(baseline)
    checked = str(baseline["subscribers"])
    sums = [rows[0]["checksums"], baseline["checksums"]]
    agree = sums[0].get(checked, 0) == sums[1].get(checked, 1)  # type: ignore[attr-defined]
    print(table(rows))
    print(
        f"engine vs baseline: {speedup:,.0f}x ({speedup_cpu:,.0f}x on CPU time); "
        f"identical digests on {checked} subscribers: {agree}"
    )
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "batch_papers": BATCH,
        "listed_per_digest": LIMIT,
        "profile_pool": args.pool,
        "workers": args.workers,
        "modes": {
            "engine": "rank every match, explain the top 25 (Match with interests, words, spans)",
            "ranked": "rank every match, keep the top 25 papers, no explanation",
            "baseline": "each profile against each paper in a loop, explain the top 25",
        },
        "speedup_engine_vs_baseline": round(speedup, 1),
        "speedup_engine_vs_baseline_cpu": round(speedup_cpu, 1),
        "collector": (
            f"young-generation GC threshold {YOUNG_THRESHOLD:,} while streaming, as the planner "
            "(mailer.daemon.tuning)"
        ),
        "baseline_note": (
            f"baseline run on the first {sample:,} of the {compare:,} subscribers (it has no "
            "caches: its rate does not depend on the count); speedup = engine rate at "
            f"{compare:,} / baseline rate on the sample"
        ),
        "engine_and_baseline_identical": agree,
        "runs": rows,
    }
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
