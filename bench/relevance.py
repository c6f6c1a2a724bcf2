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

With ``--model DIR`` the learned ranking compares meanings with a locally installed
sentence-transformers model, through the very path the planner takes when
``MAILER_RELEVANCE_MODEL`` names that directory (``store_spaces``); the figures go to their own
file. ``--learned`` and ``--also-above`` override those ``Tuning`` knobs for a diagnostic run
only (the defaults were tuned on TF-IDF and stay what the daemon uses).

    python bench/relevance.py                 # table + bench/results/relevance.json
    python bench/relevance.py --model DIR     # ... + bench/results/relevance-<dir name>.json
    python bench/relevance.py --learned 2     # diagnostic: ... relevance-diagnostic.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from mailer.context import Defaults, PlanOptions  # noqa: E402
from mailer.db.digests import load_digests  # noqa: E402
from mailer.db.migrate import upgrade  # noqa: E402
from mailer.db.papers import upsert_papers  # noqa: E402
from mailer.db.session import make_engine, make_session_factory  # noqa: E402
from mailer.db.tables import DigestRow  # noqa: E402
from mailer.matching import PaperIndex, parse_profile  # noqa: E402
from mailer.models import Match, Paper  # noqa: E402
from mailer.pipeline.learning import Learner, StoreSpace, store_spaces  # noqa: E402
from mailer.pipeline.plan import DigestPlanner  # noqa: E402
from mailer.relevance import Vote  # noqa: E402
from mailer.relevance.tuning import DEFAULT, Tuning  # noqa: E402
from mailer.rendering.views import group_matches  # noqa: E402
from mailer.subscribers import feedback  # noqa: E402
from mailer.subscribers.manage import SubscriberInput, add  # noqa: E402

DATA = ROOT.parent / "shared" / "relevance"
RESULTS = ROOT / "bench" / "results" / "relevance.json"
LIMIT = 25  # MAILER_MAX_PAPERS
DAY1 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
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
    """Both days through the real planner on a SQLite database; votes through the web's path.

    Day 1's papers arrive, every subscriber's digest is planned; readers vote on what was
    listed (as ``POST /feedback/{token}`` records it); day 2's papers arrive and day 2 is
    planned. The digests are read back from the outbox as the renderer reads them.
    """

    def __init__(
        self,
        papers: list[Paper],
        folder: Path,
        spaces: StoreSpace | None = None,
        tuning: Tuning = DEFAULT,
    ) -> None:
        self.spaces = spaces if spaces is not None else store_spaces(None)
        self.tuning = tuning
        self.day1 = [p for p in papers if (p.id or 0) % 2 == 1]  # n even
        self.day2 = [p for p in papers if (p.id or 0) % 2 == 0]  # n odd
        self.n_of = {p.key: (p.id or 0) - 1 for p in papers}
        url = f"sqlite:///{folder / 'relevance.db'}"
        upgrade(url)
        self.engine = make_engine(url)
        self.sessions = make_session_factory(self.engine)
        self.ids: dict[tuple[str, str, str], int] = {}

    def subscribe(self, persona: str, kind: str, side: str, profile: str) -> None:
        """One subscriber (control or reader), confirmed before day 1's papers arrived."""
        raw = SubscriberInput(f"{persona}-{kind}-{side}@example.org", profile, timezone="UTC")
        joined = DAY1 - timedelta(hours=12)
        added = add(self.sessions, raw, confirmed=True, defaults=Defaults(), now=joined)
        self.ids[(persona, kind, side)] = added.id

    def day(self, number: int) -> dict[int, list[Match]]:
        """Store that day's papers, plan every subscriber; their digests' matches as listed."""
        at = self.arrive(number)
        counter = iter(range(10**9))
        planner = DigestPlanner(
            self.sessions,
            new_message_id=lambda: f"<{next(counter)}.{number}@bench>",
            options=PlanOptions(max_papers=LIMIT),
            learner=Learner(self.spaces, self.tuning),
        )
        planner.run(now=at, force=True, dry_run=False)
        with self.sessions() as session:
            ids = list(session.scalars(select(DigestRow.id).where(DigestRow.created_at == at)))
            stored = load_digests(session, ids)
        return {d.subscriber.id: list(d.matches) for d in stored.values()}

    def arrive(self, number: int) -> datetime:
        """Store that day's papers (fetched two hours before the digests); when it is planned."""
        at = DAY1 if number == 1 else DAY2
        papers = [replace(p, id=None) for p in (self.day1 if number == 1 else self.day2)]
        with self.sessions.begin() as session:
            upsert_papers(session, papers, at - timedelta(hours=2))
        return at

    def ns(self, matches: Sequence[Match]) -> list[int]:
        """The labelled set's ``n`` of each listed paper."""
        return [self.n_of[m.paper.key] for m in matches]

    def vote(self, subscriber_id: int, examples: list[tuple[Match, Vote]]) -> None:
        """Record a reader's votes as the feedback page does."""
        for match, choice in examples:
            assert match.paper.id is not None
            feedback.vote(self.sessions, subscriber_id, match.paper.id, choice,
                          origin="email", now=DAY1 + timedelta(hours=3))  # fmt: skip


def votes(
    listed: Sequence[Match], labels: dict[int, int], n_of: dict[str, int]
) -> list[tuple[Match, Vote]]:
    """The reader's day-1 votes: core -> more like this, not for them -> less, adjacent -> none."""
    found = []
    for match in listed:
        label = labels[n_of[match.paper.key]]
        if label != 1:
            found.append((match, Vote.MORE if label == 2 else Vote.LESS))
    return found


def first_day(
    engine: Engine, personas: list[Persona]
) -> dict[tuple[str, str], list[tuple[Match, Vote]]]:
    """Subscribe everyone, plan day 1, record the readers' votes; the votes per reader."""
    for persona in personas:
        for kind in KINDS:
            for side in ("control", "reader"):
                engine.subscribe(persona.id, kind, side, persona.profiles[kind])
    day1 = engine.day(1)
    cast: dict[tuple[str, str], list[tuple[Match, Vote]]] = {}
    for persona in personas:
        for kind in KINDS:
            voter = engine.ids[(persona.id, kind, "reader")]
            listed = seen_order(day1.get(voter, []))
            cast[(persona.id, kind)] = votes(listed, persona.labels, engine.n_of)
            engine.vote(voter, cast[(persona.id, kind)])
    return cast


def run(engine: Engine, personas: list[Persona]) -> dict[str, list[dict[str, Any]]]:
    """Every persona's control and reader figures on day 2, per profile kind."""
    cast = first_day(engine, personas)
    day2 = engine.day(2)
    pool = [(p.id or 0) - 1 for p in engine.day2]
    # What main's keyword engine lists on day 2, to check that no control changed.
    keyword_index = PaperIndex(engine.day2)
    results: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        rows = []
        for persona in personas:
            control = day2.get(engine.ids[(persona.id, kind, "control")], [])
            reader = day2.get(engine.ids[(persona.id, kind, "reader")], [])
            given = cast[(persona.id, kind)]
            ns = engine.ns
            keyword = [m.paper.key for m in keyword_index.digest(
                parse_profile(persona.profiles[kind]), limit=LIMIT).matches]  # fmt: skip
            rows.append({
                "persona": persona.id,
                "votes": {"more": sum(v is Vote.MORE for _, v in given),
                          "less": sum(v is Vote.LESS for _, v in given)},
                "control_seen": scores(ns(seen_order(control)), persona.labels, pool),
                "control_rank": scores(ns(control), persona.labels, pool),
                "reader": scores(ns(seen_order(reader)), persona.labels, pool),
                "control_is_keyword_digest": [m.paper.key for m in control] == keyword,
                "listed": {"control": len(control), "reader": len(reader),
                           "also_like": sum(m.resembles is not None for m in reader)},
            })  # fmt: skip
        results[kind] = rows
    return results


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
        "controls_unchanged": all(
            row["control_is_keyword_digest"] for rows in results.values() for row in rows
        ),
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


def arguments() -> argparse.Namespace:
    """The command line; ``--out`` defaults to a file of the backend's own."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the labelled set's folder")
    parser.add_argument("--out", type=Path, help="default: relevance[-<model>][-diagnostic].json")
    parser.add_argument("--model", type=Path, help="a sentence-transformers model directory")
    parser.add_argument("--learned", type=float, default=DEFAULT.learned, help="diagnostic")
    parser.add_argument("--also-above", type=float, default=DEFAULT.also_above, help="diagnostic")
    args = parser.parse_args()
    if args.out is None:
        # A diagnostic run never overwrites the figures of the defaults.
        tuned = (args.learned, args.also_above) != (DEFAULT.learned, DEFAULT.also_above)
        tail = f"-{args.model.name.lower()}" if args.model else ""
        tail += "-diagnostic" if tuned else ""
        args.out = RESULTS.with_name(f"relevance{tail}.json")
    return args


def backend(model: Path | None, spaces: StoreSpace, tuning: Tuning) -> dict[str, object]:
    """What ranked: the model (None for TF-IDF), the space's sample and the knobs used."""
    return {
        "model": model.name if model else None,
        "space_sample": spaces.sample,
        "representation": repr(spaces.representation),
        "tuning": asdict(tuning),
        "tuning_is_default": tuning == DEFAULT,
    }


def main() -> None:
    """Run the protocol, print the table, write the JSON."""
    args = arguments()
    started = time.perf_counter()
    papers, personas = load(args.data)
    # The planner's own call: MAILER_RELEVANCE_MODEL=args.model (TF-IDF when None).
    spaces = store_spaces(args.model)
    tuning = Tuning(learned=args.learned, also_above=args.also_above)
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(papers, Path(folder), spaces, tuning)
        results = run(engine, personas)
        engine.engine.dispose()
    print(table(results))
    verdict = goals(results)
    for name, goal in verdict.items():
        print(f"{name}: {goal}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "protocol": "shared/relevance/README.md: day 1 even n, day 2 odd n; votes after day 1",
        "personas": [p.id for p in personas],
        "backend": backend(args.model, spaces, tuning),
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
