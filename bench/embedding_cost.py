"""What the sentence-embedding backend costs per 1,000 papers on this CPU, against TF-IDF.

Each paper is encoded once per process (``mailer.relevance.embedding.Encoder`` keeps vectors by
text), so this is the price of a day's new papers, paid once by the planner, not per reader.
The baseline, measured in the same run and alternated with it round by round, is what the
default backend pays for the same papers: fitting ``TextSpace`` over them and vectorising them.
1,000 papers are resampled from the bundled sample as ``bench/matching.py`` makes them; every
round starts from an empty cache. CPU seconds (both cores' worth, as torch uses them) are the
figure that counts on a shared machine; wall time and the 1-minute load average are beside it.
The model is the operator's (a sentence-transformers directory); nothing is downloaded.

    python bench/embedding_cost.py --model /path/to/all-MiniLM-L6-v2
    python bench/embedding_cost.py --model DIR --papers 500 --repeat 2
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from matching import SEED, load_sample, make_batch  # noqa: E402

from mailer.pipeline.encoder import load_encoder  # noqa: E402
from mailer.relevance.embedding import (  # noqa: E402
    EMBEDDING_REPRESENTATION,
    EmbeddingSpace,
    Encoder,
)
from mailer.relevance.space import DEFAULT_REPRESENTATION, TextSpace  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "embedding_cost.json"


def timed(work: Callable[[], Any]) -> dict[str, float]:
    """CPU and wall seconds of one call, with the load average when it ended."""
    cpu, wall = time.process_time(), time.perf_counter()
    work()
    return {
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "load": os.getloadavg()[0],
    }


def rounds(args: argparse.Namespace, encoder: Encoder) -> dict[str, list[dict[str, float]]]:
    """``repeat`` rounds of both backends over the same papers, alternating, cold caches."""
    papers = make_batch(load_sample(), random.Random(SEED))[: args.papers]
    tfidf_texts = [DEFAULT_REPRESENTATION.text(p.title, p.abstract) for p in papers]
    found: dict[str, list[dict[str, float]]] = {"tf-idf": [], "embedding": []}
    for _ in range(args.repeat):
        found["tf-idf"].append(timed(lambda: TextSpace(tfidf_texts).paper_vectors(papers)))
        encoder.forget()
        found["embedding"].append(timed(lambda: EmbeddingSpace(encoder, []).paper_vectors(papers)))
    return found


def summary(runs: list[dict[str, float]], papers: int) -> dict[str, float]:
    """Medians, scaled to 1,000 papers."""
    scale = 1000 / papers
    return {
        "cpu_s_per_1000": round(statistics.median(r["cpu"] for r in runs) * scale, 3),
        "wall_s_per_1000": round(statistics.median(r["wall"] for r in runs) * scale, 3),
        "load_1min": round(statistics.median(r["load"] for r in runs), 2),
    }


def main() -> None:
    """Measure, print the table, write ``bench/results/embedding_cost.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="sentence-transformers dir")
    parser.add_argument("--papers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter(), time.process_time()
    encoder = load_encoder(args.model)
    load = {
        "cpu": time.process_time() - started[1],
        "wall": time.perf_counter() - started[0],
        "load": os.getloadavg()[0],
    }
    found = rounds(args, encoder)
    table = {kind: summary(runs, args.papers) for kind, runs in found.items()}
    print(f"{'backend':<10} {'CPU s / 1,000':>14} {'wall s / 1,000':>15} {'load':>6}")
    for kind, row in table.items():
        print(
            f"{kind:<10} {row['cpu_s_per_1000']:>14.2f} {row['wall_s_per_1000']:>15.2f}"
            f" {row['load_1min']:>6.2f}"
        )
    print(f"model load (import + read, once per process): {load['cpu']:.1f} CPU s")
    RESULTS.write_text(
        json.dumps(
            {
                "model": args.model.name,
                "dimensions": encoder.size,
                "papers": args.papers,
                "repeat": args.repeat,
                "representation": {"embedding": repr(EMBEDDING_REPRESENTATION)},
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "model_load": load,
                "summary": table,
                "runs": found,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
