"""Relevance bench (issue 18): does one day of votes teach the digest what a reader wants?

The protocol of ``../shared/relevance/README.md``: the labelled papers split into two days
(day 1 = even ``n``, day 2 = odd ``n``); each persona subscribes twice with the same profile,
a control that never votes and a reader who, after the day-1 digest, votes on every listed
paper as the labels say (2 -> "more like this", 0 -> "less like this", 1 -> no vote). Both
day-2 digests are scored in the order the reader sees them: nDCG@10 (gain 2^label - 1, the
ideal from all of day 2), P@10 (label >= 1) and R@25, the recall of core papers (label 2)
among everything listed. Every persona and the mean, for ``profile`` and ``terse``.

The control's keyword digest groups papers by interest in the email; the README's figures
rank them without grouping, so the control is reported both ways ("seen" and "rank") and the
goals are checked against the better of the two.

    python bench/relevance.py                 # table + bench/results/relevance.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.matching import PaperIndex, parse_profile  # noqa: E402
from mailer.models import Match, Paper  # noqa: E402
from mailer.relevance import Example, TextSpace, Vote, learn, paper_text  # noqa: E402
from mailer.relevance.digest import learned_digest  # noqa: E402
from mailer.rendering.views import group_matches  # noqa: E402

DATA = ROOT.parent / "shared" / "relevance"
RESULTS = ROOT / "bench" / "results" / "relevance.json"
LIMIT = 25  # MAILER_MAX_PAPERS
KINDS = ("profile", "terse")
METRICS = ("ndcg10", "p10", "r25")


@dataclass(frozen=True)
class Persona:
    """A labelled researcher: their two profiles and a label per paper ``n``."""

    id: str
    profiles: dict[str, str]
    labels: dict[int, int]


def load(data: Path) -> tuple[list[Paper], list[Persona]]:
    """The labelled papers (``id`` = n + 1) and personas."""
    with (data / "papers.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    papers = [
        Paper(key=f"arxiv:{r['id']}", title=r["title"], abstract=r["abstract"],
              arxiv_id=r["id"], id=int(r["n"]) + 1)
        for r in rows
    ]  # fmt: skip
    personas = []
    for entry in json.loads((data / "personas.json").read_text(encoding="utf-8")):
        labels = json.loads((data / f"labels_{entry['id']}.json").read_text(encoding="utf-8"))
        personas.append(
            Persona(
                entry["id"],
                {kind: entry[kind] for kind in KINDS},
                {int(n): int(v) for n, v in labels.items()},
            )
        )
    return papers, personas


def seen_order(matches: Sequence[Match]) -> list[Match]:
    """The listed papers in the order the email shows them (keyword digests are grouped)."""
    if any(m.learned is not None for m in matches):
        return list(matches)
    return [m for _, members in group_matches(matches) for m in members]


def ndcg(order: Sequence[int], labels: dict[int, int], pool: Sequence[int], k: int = 10) -> float:
    """nDCG@k with gain 2^label - 1, the ideal ranking drawn from the whole pool."""
    dcg = sum((2 ** labels[n] - 1) / math.log2(i + 2) for i, n in enumerate(order[:k]))
    ideal = sorted((labels[n] for n in pool), reverse=True)[:k]
    best = sum((2**g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def scores(order: Sequence[int], labels: dict[int, int], pool: Sequence[int]) -> dict[str, float]:
    """nDCG@10, P@10 and the recall of core papers among everything listed."""
    core = [n for n in pool if labels[n] == 2]
    return {
        "ndcg10": ndcg(order, labels, pool),
        "p10": sum(labels[n] >= 1 for n in order[:10]) / 10,
        "r25": sum(labels[n] == 2 for n in order) / len(core) if core else 0.0,
    }


class Engine:
    """Day-1 and day-2 digests through the project's engine and learned ranking (pure core)."""

    def __init__(self, papers: list[Paper]) -> None:
        self.day1 = [p for p in papers if (p.id or 0) % 2 == 1]  # n even
        self.day2 = [p for p in papers if (p.id or 0) % 2 == 0]  # n odd
        self.index1, self.index2 = PaperIndex(self.day1), PaperIndex(self.day2)
        # The store on day 2 holds both days' papers: the space is fitted over all of them.
        self.space = TextSpace([paper_text(p.title, p.abstract) for p in papers])
        self.window2 = self.space.paper_vectors(self.index2.papers)

    def keyword(self, day: int, profile: str) -> list[Match]:
        """A digest without votes, as listed."""
        index = self.index1 if day == 1 else self.index2
        return list(index.digest(parse_profile(profile), limit=LIMIT).matches)

    def learned(self, profile: str, examples: list[Example]) -> list[Match]:
        """The day-2 digest of a reader with these examples."""
        model = learn(self.space, examples)
        if model is None:
            return self.keyword(2, profile)
        voted = frozenset(e.paper_id for e in examples if e.paper_id is not None)
        found = learned_digest(
            self.index2, self.window2, parse_profile(profile), model, voted=voted, limit=LIMIT
        )
        return list(found.matches)


def votes(listed: Sequence[Match], labels: dict[int, int]) -> list[Example]:
    """The reader's day-1 votes: core -> more like this, not for them -> less, adjacent -> none."""
    found = []
    for match in listed:
        label = labels[(match.paper.id or 0) - 1]
        if label != 1:
            vote = Vote.MORE if label == 2 else Vote.LESS
            text = paper_text(match.paper.title, match.paper.abstract)
            found.append(Example(vote, match.paper.title, text, match.paper.id))
    return found


def run(engine: Engine, personas: list[Persona]) -> dict[str, list[dict[str, Any]]]:
    """Every persona's control and reader figures on day 2, per profile kind."""
    pool = [(p.id or 0) - 1 for p in engine.day2]
    results: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        rows = []
        for persona in personas:
            profile = persona.profiles[kind]
            examples = votes(seen_order(engine.keyword(1, profile)), persona.labels)
            control = engine.keyword(2, profile)
            reader = engine.learned(profile, examples)
            rows.append({
                "persona": persona.id,
                "votes": {"more": sum(e.vote is Vote.MORE for e in examples),
                          "less": sum(e.vote is Vote.LESS for e in examples)},
                "control_seen": scores(_ns(seen_order(control)), persona.labels, pool),
                "control_rank": scores(_ns(control), persona.labels, pool),
                "reader": scores(_ns(seen_order(reader)), persona.labels, pool),
                "listed": {"control": len(control), "reader": len(reader),
                           "also_like": sum(m.resembles is not None for m in reader)},
            })  # fmt: skip
        results[kind] = rows
    return results


def _ns(matches: Sequence[Match]) -> list[int]:
    return [(m.paper.id or 0) - 1 for m in matches]


def means(rows: list[dict[str, Any]], side: str) -> dict[str, float]:
    """The mean of each metric over personas for one side."""
    return {m: sum(float(r[side][m]) for r in rows) / len(rows) for m in METRICS}


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    """The printed table: per persona and mean, control (seen, rank) and reader."""
    head = "            control (seen)      control (rank)      reader (1 day of votes)"
    sub = "kind    who  nDCG   P@10  R@25   nDCG   P@10  R@25   nDCG   P@10  R@25  votes +/-"
    lines = [head, sub]
    for kind, rows in results.items():
        for row in [*rows, None]:
            sides = ("control_seen", "control_rank", "reader")
            if row is None:
                cells = [means(rows, side) for side in sides]
                who, vote = "mean", ""
            else:
                cells = [row[side] for side in sides]
                v = row["votes"]
                who, vote = str(row["persona"]), f"{v['more']}/{v['less']}"
            figures = "   ".join(" ".join(f"{c[m]:.2f}".rjust(5) for m in METRICS) for c in cells)
            lines.append(f"{kind:7} {who:4} {figures}  {vote}")
    return "\n".join(lines)


def goals(results: dict[str, list[dict[str, Any]]]) -> dict[str, object]:
    """The issue's goals, each with the figures it was judged on."""
    careful = {m: max(means(results["profile"], "control_seen")[m],
                      means(results["profile"], "control_rank")[m]) for m in METRICS}  # fmt: skip
    terse = means(results["terse"], "reader")
    profile = means(results["profile"], "reader")
    return {
        "terse_readers_reach_careful_controls": {
            "target": {m: careful[m] for m in ("ndcg10", "r25")},
            "reached": {m: terse[m] for m in ("ndcg10", "r25")},
            "met": all(terse[m] >= careful[m] for m in ("ndcg10", "r25")),
        },
        "careful_readers": {
            "target": {"ndcg10": 0.95, "r25": 0.90},
            "reached": {m: profile[m] for m in ("ndcg10", "r25")},
            "met": profile["ndcg10"] >= 0.95 and profile["r25"] >= 0.90,
        },
    }


def main() -> None:
    """Run the protocol, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the labelled set's folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    papers, personas = load(args.data)
    results = run(Engine(papers), personas)
    print(table(results))
    verdict = goals(results)
    for name, goal in verdict.items():
        print(f"{name}: {goal}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "protocol": "shared/relevance/README.md: day 1 even n, day 2 odd n; votes after day 1",
        "personas": [p.id for p in personas],
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - started, 2),
        "results": results,
        "means": {kind: {side: means(rows, side) for side in ("control_seen", "control_rank",
                                                                "reader")}
                  for kind, rows in results.items()},
        "goals": verdict,
    }  # fmt: skip
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
