"""Choose the learned ranking's knobs by leave-one-persona-out (issue 18).

The relevance bench's protocol (``bench/relevance.py``): day 1 is planned and the readers vote
through the real paths once; then, for every cell of a small grid of knobs (the text
representation and the ranking's ``Tuning``), every reader's day-2 digest is made by the
planner's own learner (``Learner.digest`` over the day's window from the database) and scored.

The figure that counts is on researchers we do not have, so each persona in turn is held out:
the cell best on the other five (mean of nDCG@10 and R@25 over both profile kinds) is scored on
the held-out one, and the held-out means are printed beside the in-sample ones (the cell best
on all six, scored on all six). Four searches over the same grid: the representation alone
(the ranking's ``Tuning`` at its defaults), where the keyword matches the votes speak against
go (``sink_below``: the first version's fixed thresholds, or ``None``, below the "You may also
like" section when its best paper outscores them; everything else at its defaults), the "You
may also like" section (``also_above``, how far above the day's average a missed paper must
stand, and ``also_fills``, whether it may take the places the keyword matches leave free), and
every knob at once, the check that more knobs would only fit these six. Ties go to the cell
listed first (the simpler or previous settings). Three baselines are scored in the same run:
the first version of issue 18, the settings before the sinking rule changed, and those before
the section could fill the digest ("five also").

    python bench/relevance_tune.py       # table + bench/results/relevance_tune.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relevance import (  # noqa: E402
    DATA,
    KINDS,
    LIMIT,
    METRICS,
    Engine,
    Persona,
    first_day,
    load,
    scores,
    seen_order,
)

from mailer.db import papers as paper_repo  # noqa: E402
from mailer.matching import PaperIndex, parse_profile  # noqa: E402
from mailer.pipeline.learning import Learner, StoreSpace  # noqa: E402
from mailer.relevance.space import DEFAULT_REPRESENTATION, Representation  # noqa: E402
from mailer.relevance.tuning import Tuning  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "relevance_tune.json"
# Each knob's values, the simpler or previous setting first (ties go to it).
REPRESENTATION_GRID: dict[str, tuple[Any, ...]] = {
    "title_repeat": (1, 2, 3, 4, 5),
    "bigrams": (False, True),
}
TUNING_GRID: dict[str, tuple[Any, ...]] = {
    "disliked": (0.5, 0.0, 1.0),
    "background": (1.0, 0.5),
    "sink_below": (0.5, None, 1.0, 1.5),
    "also_above": (1.5, 1.0, 2.0),
    "also_fills": (False, True),
}
OBJECTIVE = ("ndcg10", "r25")  # the goals' two figures, for both profile kinds

Figures = dict[str, dict[str, float]]  # "persona|kind" -> metric -> value


def cells(grid: dict[str, tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """Every combination of a grid's values, in the grid's order."""
    for values in itertools.product(*grid.values()):
        yield dict(zip(grid, values, strict=True))


class Day2:
    """Day 1 planned and voted on for real; day 2's papers stored, its window indexed."""

    def __init__(self, engine: Engine, personas: list[Persona]) -> None:
        self.engine, self.personas = engine, personas
        first_day(engine, personas)
        at = engine.arrive(2)
        with engine.sessions() as session:
            window = paper_repo.papers_first_seen(session, at - timedelta(days=1), at)
        self.index = PaperIndex(window)
        self.pool = [(p.id or 0) - 1 for p in engine.day2]

    def figures(self, spaces: StoreSpace, tuning: Tuning) -> Figures:
        """Every reader's day-2 figures with these knobs, as the planner would list them."""
        engine, learner = self.engine, Learner(spaces, tuning)
        found: Figures = {}
        with engine.sessions() as session:
            learner.load(session, list(engine.ids.values()))
            for persona in self.personas:
                for kind in KINDS:
                    reader = engine.ids[(persona.id, kind, "reader")]
                    profile = parse_profile(persona.profiles[kind])
                    digest = learner.digest(
                        session, reader, self.index, profile, exclude=frozenset(), limit=LIMIT
                    )
                    assert digest is not None, "every reader voted on day 1"
                    order = engine.ns(seen_order(digest.matches))
                    found[f"{persona.id}|{kind}"] = scores(order, persona.labels, self.pool)
        return found


def objective(figures: Figures, personas: list[str]) -> float:
    """The mean of nDCG@10 and R@25 over these personas' readers, both profile kinds."""
    values = [figures[f"{p}|{k}"][m] for p in personas for k in KINDS for m in OBJECTIVE]
    return sum(values) / len(values)


def best(grid: list[tuple[dict[str, Any], Figures]], personas: list[str]) -> int:
    """The index of the cell best on ``personas`` (the first of equals)."""
    return max(range(len(grid)), key=lambda i: (round(objective(grid[i][1], personas), 9), -i))


def means(figures: Figures, personas: list[str]) -> dict[str, dict[str, float]]:
    """Per profile kind, each metric's mean over ``personas``."""
    return {
        kind: {m: sum(figures[f"{p}|{kind}"][m] for p in personas) / len(personas) for m in METRICS}
        for kind in KINDS
    }


def leave_one_out(grid: list[tuple[dict[str, Any], Figures]], ids: list[str]) -> dict[str, Any]:
    """Each persona scored by the cell best on the others; the in-sample cell beside it."""
    chosen = best(grid, ids)
    held: Figures = {}
    folds: dict[str, int] = {}
    for out in ids:
        cell = folds[out] = best(grid, [p for p in ids if p != out])
        for kind in KINDS:
            held[f"{out}|{kind}"] = grid[cell][1][f"{out}|{kind}"]
    return {
        "chosen": {"cell": chosen, "knobs": grid[chosen][0]},
        "folds": {out: {"cell": cell, "knobs": grid[cell][0]} for out, cell in folds.items()},
        "folds_agreeing": sum(cell == chosen for cell in folds.values()),
        "knob_votes": {
            knob: dict(Counter(str(grid[cell][0][knob]) for cell in folds.values()))
            for knob in grid[chosen][0]
        },
        "in_sample": {"per_persona": grid[chosen][1], "means": means(grid[chosen][1], ids)},
        "held_out": {"per_persona": held, "means": means(held, ids)},
    }


def only(
    grid: list[tuple[dict[str, Any], Figures]], free: Iterable[str]
) -> list[tuple[dict[str, Any], Figures]]:
    """The cells where every knob but ``free`` is at its default."""
    defaults = {**asdict(DEFAULT_REPRESENTATION), **asdict(Tuning())}
    fixed = [knob for knob in (*REPRESENTATION_GRID, *TUNING_GRID) if knob not in set(free)]
    return [cell for cell in grid if all(cell[0][k] == defaults[k] for k in fixed)]


def table(
    searches: dict[str, dict[str, Any]], ids: list[str], baselines: dict[str, Figures]
) -> str:
    """Per persona and mean: the baselines, then each search's in-sample and held-out figures."""
    head = "kind    who    " + "".join(f"{name[:10]:10}  " for name in baselines)
    head += "".join(f"{name[:10]:10} in  held-out    " for name in searches)
    lines = [
        head,
        " " * 15
        + "   ".join(["nDCG  R@25"] * len(baselines))
        + "   nDCG  R@25  nDCG  R@25" * len(searches),
    ]
    for kind in KINDS:
        for who in [*ids, "mean"]:
            sets = list(baselines.values())
            for report in searches.values():
                sets += [report["in_sample"]["per_persona"], report["held_out"]["per_persona"]]
            cells_ = []
            for figures in sets:
                row = means(figures, ids)[kind] if who == "mean" else figures[f"{who}|{kind}"]
                cells_.append(f"{row['ndcg10']:.2f}  {row['r25']:.2f}")
            lines.append(f"{kind:7} {who:5}  " + "   ".join(cells_))
    return "\n".join(lines)


def main() -> None:
    """Run the grid once, choose by leave-one-persona-out, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the labelled set's folder")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    load_before = os.getloadavg()
    papers, personas = load(args.data)
    ids = [p.id for p in personas]
    grid: list[tuple[dict[str, Any], Figures]] = []
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(papers, Path(folder))
        day2 = Day2(engine, personas)
        # The first version of issue 18, the settings before the sinking rule changed, and
        # those before "also like" could fill the digest.
        five = Tuning(also_above=1.5, also_fills=False)
        baselines = {
            "first": day2.figures(
                StoreSpace(representation=Representation(1, False)),
                replace(five, sink_below=0.5),
            ),
            "threshold": day2.figures(StoreSpace(), replace(five, sink_below=0.5)),
            "five also": day2.figures(StoreSpace(), five),
        }
        for shape in cells(REPRESENTATION_GRID):
            spaces = StoreSpace(representation=Representation(**shape))
            for knobs in cells(TUNING_GRID):
                grid.append(({**shape, **knobs}, day2.figures(spaces, Tuning(**knobs))))
        engine.engine.dispose()
    default = asdict(Tuning())
    searches = {
        "representation": leave_one_out(only(grid, REPRESENTATION_GRID), ids),
        "sink rule": leave_one_out(only(grid, ("sink_below",)), ids),
        "also like": leave_one_out(only(grid, ("also_above", "also_fills")), ids),
        "every knob": leave_one_out(grid, ids),
    }
    print(table(searches, ids, baselines))
    for name, found in searches.items():
        print(f"{name}: chosen {found['chosen']['knobs']}")
        print(f"  folds agreeing with it: {found['folds_agreeing']} of {len(ids)}")
        print(f"  each knob's value per fold: {found['knob_votes']}")
    report: dict[str, Any] = {
        "protocol": "bench/relevance.py's two days; leave-one-persona-out over the grid",
        "objective": "mean of nDCG@10 and R@25 of the readers, profile and terse",
        "grid": {**REPRESENTATION_GRID, **TUNING_GRID},
        "cells": len(grid),
        "baselines": {
            name: {"per_persona": figures, "means": means(figures, ids)}
            for name, figures in baselines.items()
        },
        "searches": searches,
        "default_tuning": default,
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "load_average_before": [round(x, 2) for x in load_before],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
