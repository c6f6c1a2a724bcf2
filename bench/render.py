"""Render benchmark (issue 17): CPU per digest of rendering, shared parts against none shared.

N digests are matched by the engine over a 1,000-paper batch for N realistic profiles (the
matching bench's batch and profile generator; at most ``--papers`` listed, 20 by default, as
MAILER_MAX_PAPERS would), then rendered one after the other as a sending run does:

  links   the personal links (signed tokens: two per listed paper, five per digest);
  render  ``Renderer.digest``: the HTML and text parts;
  wire    the email built and serialised for SMTP.

Two renderers run over the same digests, in alternating rounds:

  shared  as a run renders: each part of a paper's block is rendered once for every digest
          that shows it the same way (``Renderer``'s bounded caches);
  cold    every cache emptied before each digest: each paper rendered afresh for every
          subscriber, what rendering cost before parts were shared (the baseline).

Times are CPU seconds of this process (``time.process_time``): on a shared machine wall time
moves with other load, CPU time much less. Matching the digests is not timed.

    python bench/render.py                 # 5,000 digests, 3 rounds
    python bench/render.py --quick         # 500 digests, 1 round, a smoke test

Prints a table and writes bench/results/render.json (``--quick`` writes nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from matching import SEED, ProfileMaker, load_sample, make_batch  # noqa: E402

from mailer.config import Settings  # noqa: E402
from mailer.context import Context, make_context  # noqa: E402
from mailer.db.session import make_engine, make_session_factory  # noqa: E402
from mailer.matching import PaperIndex, parse_profile  # noqa: E402
from mailer.models import Digest, Frequency, Subscriber, SubscriberStatus  # noqa: E402
from mailer.pipeline.render import RenderedDigest, digest_links, wire_message  # noqa: E402
from mailer.schedule import Period  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "render.json"
PERIOD = Period(Frequency.DAILY, date(2026, 11, 22))


@dataclass
class Stages:
    """CPU seconds spent in each stage over one pass."""

    links: float = 0.0
    render: float = 0.0
    wire: float = 0.0
    digests: int = 0
    bytes: int = 0

    def per_digest_ms(self) -> dict[str, float]:
        n = max(1, self.digests)
        total = self.links + self.render + self.wire
        return {
            "links_ms": round(1000 * self.links / n, 3),
            "render_ms": round(1000 * self.render / n, 3),
            "wire_ms": round(1000 * self.wire / n, 3),
            "total_ms": round(1000 * total / n, 3),
        }


def make_digests(count: int, max_papers: int) -> list[Digest]:
    """``count`` digests of engine-matched papers (subscribers matching fewer than 3 skipped)."""
    sample = load_sample()
    index = PaperIndex(make_batch(sample, random.Random(SEED)))
    maker = ProfileMaker(sample, SEED + 1)
    digests: list[Digest] = []
    n = 0
    while len(digests) < count:
        n += 1
        text = maker.profile()
        ranked = index.digest(parse_profile(text), exclude=frozenset(), limit=max_papers)
        if len(ranked.matches) < 3:
            continue
        subscriber = Subscriber(
            n, f"reader{n:07d}@example.net", SubscriberStatus.ACTIVE, text,
            Frequency.DAILY, "08:00", "UTC",
        )  # fmt: skip
        message_id = f"<bench-{n}@example.org>"
        digests.append(Digest(subscriber, PERIOD, ranked.matches, ranked.total, 1000, message_id))
    return digests


def context() -> Context:
    settings = Settings(
        database_url="sqlite://",
        secret_key="bench-secret-key-0123456789abcdef",
        MAILER_FROM="Paper Digest <digest@example.org>",
    )
    return make_context(settings, make_session_factory(make_engine("sqlite://")))


def one_pass(ctx: Context, digests: list[Digest], *, shared: bool) -> Stages:
    """Render every digest once, timing each stage in CPU seconds."""
    renderer = ctx.renderer
    renderer.clear_caches()
    stages = Stages()
    clock = time.process_time
    for number, digest in enumerate(digests, start=1):
        if not shared:
            renderer.clear_caches()
        began = clock()
        ids = [m.paper.id for m in digest.matches if m.paper.id is not None]
        links = digest_links(ctx, digest.subscriber.id, number, ids)
        linked = clock()
        rendered = renderer.digest(digest, links, date_label=PERIOD.label)
        done = clock()
        wire = wire_message(ctx, RenderedDigest(digest, links, rendered, number))
        stages.links += linked - began
        stages.render += done - linked
        stages.wire += clock() - done
        stages.digests += 1
        stages.bytes += len(wire.data)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digests", type=int, default=5000)
    parser.add_argument("--papers", type=int, default=20, help="papers per digest at most")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 digests, one round")
    args = parser.parse_args()
    count, rounds = (500, 1) if args.quick else (args.digests, args.rounds)

    digests = make_digests(count, args.papers)
    listed = statistics.mean(len(d.matches) for d in digests)
    ctx = context()
    runs: list[dict[str, Any]] = []
    for round_number in range(rounds):
        # Alternate which goes first: the machine's speed drifts within a run.
        order = (True, False) if round_number % 2 == 0 else (False, True)
        for shared in order:
            stages = one_pass(ctx, digests, shared=shared)
            runs.append(
                {
                    "round": round_number + 1,
                    "mode": "shared" if shared else "cold",
                    **stages.per_digest_ms(),
                    "mean_bytes": round(stages.bytes / stages.digests),
                }
            )
    summary = {
        mode: {
            key: round(statistics.median(r[key] for r in runs if r["mode"] == mode), 3)
            for key in ("links_ms", "render_ms", "wire_ms", "total_ms")
        }
        for mode in ("cold", "shared")
    }
    speedup = summary["cold"]["render_ms"] / summary["shared"]["render_ms"]
    print(f"{count:,} digests, {listed:.1f} papers each on average, {rounds} round(s)")
    print(f"{'mode':8} {'links ms':>9} {'render ms':>10} {'wire ms':>8} {'total ms':>9}")
    print("-" * 48)
    for mode, row in summary.items():
        print(
            f"{mode:8} {row['links_ms']:9.3f} {row['render_ms']:10.3f} "
            f"{row['wire_ms']:8.3f} {row['total_ms']:9.3f}"
        )
    print(f"render: shared parts {speedup:.2f}x faster than none shared (CPU ms per digest)")
    if args.quick:
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "digests": count,
        "mean_papers_per_digest": round(listed, 2),
        "rounds": rounds,
        "median_ms_per_digest": summary,
        "render_speedup": round(speedup, 2),
        "runs": runs,
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
