"""Build mailer/data/sample_papers.jsonl from the seed listings in ../shared/seeds/.

Usage: python scripts/build_sample.py [SEEDS_DIR] [OUT_FILE]

Papers are deduplicated by normalised title (first listing wins) and written sorted by file and
position, one JSON object per line, in the ``file:`` source format. The listings carry only a
title and an abstract; nothing is invented: ``authors`` and ``categories`` stay empty, ``arxiv_id``
and ``upvotes`` null, and ``url`` is an arXiv title search.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mailer.sources import listing

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SEEDS = ROOT.parent / "shared" / "seeds"
DEFAULT_OUT = ROOT / "mailer" / "data" / "sample_papers.jsonl"


def build(seeds: Path) -> list[dict[str, object]]:
    """The sample's paper objects from every ``*.txt`` listing under ``seeds``."""
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for path in sorted(seeds.glob("*.txt")):
        parsed = listing.parse(path.read_text(encoding="utf-8"), f"file:{path.name}")
        for paper in parsed.papers:
            if paper.key in seen:
                continue
            seen.add(paper.key)
            rows.append(
                {
                    "key": paper.key,
                    "title": paper.title,
                    "abstract": paper.abstract,
                    "authors": [],
                    "categories": [],
                    "arxiv_id": None,
                    "url": paper.url,
                    "upvotes": None,
                    "listing": path.name,
                }
            )
    return rows


def main(argv: list[str]) -> int:
    """Write the sample file; print how many papers it holds."""
    seeds = Path(argv[1]) if len(argv) > 1 else DEFAULT_SEEDS
    out = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUT
    rows = build(seeds)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} papers to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
