"""Web benchmark (issue 19): the papers page, a search and the signup form under wrk, next to
the machine's ceilings measured in the same run.

A database holding a year of papers is generated from the bundled sample's vocabulary (real
titles spliced at a word boundary, abstracts mixed from real sentences, synthetic authors,
categories and upvotes; weekdays only, ~385 a day), then ``mailer web --workers N`` serves it.
Each target gets ``wrk -t2 -c64 -d10s --latency``:

- ``ceiling``: a minimal ASGI app (bench/minimal_asgi.py) under uvicorn with the same number of
  processes: what this machine, uvicorn and wrk allow at all;
- ``static``: the stylesheet from the mailer app itself (routing, middleware, no page logic);
- ``papers``: ``/papers`` (the latest day); ``search``: ``/papers?q=...``; ``signup``: ``/``;
- ``search-uncached`` (a diagnosis, no goal): every request a different query (a Lua script
  adds a distinct never-matching word), so each one runs the search, explains and renders.

Then each of a set of realistic queries is sent once (cold: not cached), for its latency.
wrk runs on the same two cores as the server: the ceilings pay that cost too. The machine is
shared, so the load average is recorded before and after every run.

    python bench/web.py                         # 100k papers, one process per core
    python bench/web.py --papers 20000 --duration 5 --quick
    python bench/web.py --db /tmp/year.db       # reuse (or keep) the generated database
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailer.db.migrate import upgrade  # noqa: E402
from mailer.db.papers import upsert_papers  # noqa: E402
from mailer.db.session import make_engine, make_session_factory  # noqa: E402
from mailer.models import Paper  # noqa: E402

SAMPLE = ROOT / "mailer" / "data" / "sample_papers.jsonl"
RESULTS = ROOT / "bench" / "results" / "web.json"
SEED = 20261119
GOAL_RPS = 1000.0
GOAL_P99_MS = 100.0
SEARCH = 'diffusion policy, "world model"'
COLD_QUERIES = [
    "robot",
    "reinforcement learning -survey",
    '"language model" agents',
    "author:chen",
    "cat:cs.RO",
    "title:transformer",
    '"self-supervised" representation',
    "behavior, exploration",
    '"large language model"',
    "*",
]
FIRST = re.findall(r"\w+", "Wei Anna Sergey Maria Chen Ahmed Yuki Lucas Priya Omar Elena Jonas Mei")
SYLLABLES = re.findall(r"\w+", "ka ri mo le vin zha gar mul sa to no vak sin ro ssi ive co hen")
LAST = sorted({(a + b + c).title() for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES[:6]})
CATEGORIES = ["cs.LG", "cs.CL", "cs.CV", "cs.RO", "cs.AI", "stat.ML", "cs.NE", "eess.SY"]
UNCACHED_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/papers?q=" .. "%s" .. "%%2C+zq" .. counter .. "x")
end
"""


# -- the database -----------------------------------------------------------------------------


class Generator:
    """Papers in the sample's vocabulary: spliced real titles, mixed real sentences."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        sample = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
        self.titles = [s["title"].split() for s in sample if len(s["title"].split()) >= 4]
        self.sentences = [
            sentence
            for s in sample
            for sentence in re.split(r"(?<=\.)\s+", s["abstract"])
            if len(sentence) > 30
        ]
        self.count = 0

    def title(self) -> str:
        """A title begun by one real title and finished by another."""
        head, tail = self.rng.sample(self.titles, 2)
        cut_head = self.rng.randint(2, max(2, len(head) - 1))
        cut_tail = self.rng.randint(1, max(1, len(tail) - 2))
        return " ".join(head[:cut_head] + tail[cut_tail:])

    def paper(self) -> Paper:
        """One paper with the fields the sources fill."""
        rng = self.rng
        self.count += 1
        arxiv_id = f"{25 + self.count // 90_000:02d}{1 + self.count % 12:02d}.{self.count:05d}"
        hf = rng.random() < 0.3
        return Paper(
            key=arxiv_id,
            arxiv_id=arxiv_id,
            title=self.title(),
            abstract=" ".join(rng.sample(self.sentences, rng.randint(4, 8))),
            authors=tuple(
                f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 8))
            ),
            categories=tuple(rng.sample(CATEGORIES, rng.randint(1, 3))),
            url=f"https://arxiv.org/abs/{arxiv_id}",
            pdf_url=f"https://arxiv.org/pdf/{arxiv_id}",
            hf_url=f"https://huggingface.co/papers/{arxiv_id}" if hf else None,
            code_url=f"https://github.com/lab{self.count % 97}/repo{self.count}"
            if rng.random() < 0.2
            else None,
            upvotes=int(rng.paretovariate(1.1)) - 1 if hf else None,
            source="hf-daily" if hf else "arxiv:cs",
        )


def weekdays(last: date, count: int) -> Iterator[date]:
    """The ``count`` weekdays up to ``last``, oldest first."""
    days: list[date] = []
    day = last
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return reversed(days)


def build_database(url: str, papers: int) -> dict[str, Any]:
    """Store ``papers`` papers over a year of weekdays through the real upsert."""
    started = time.monotonic()
    upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    generator = Generator(SEED)
    days = list(weekdays(datetime.now(UTC).date(), 261))
    rng = random.Random(SEED)
    per_day = [max(1, int(rng.gauss(papers / len(days), 60))) for _ in days]
    per_day[-1] += papers - sum(per_day)  # exactly ``papers`` in all
    for day, count in zip(days, per_day, strict=True):
        at = datetime(day.year, day.month, day.day, rng.randint(0, 20), tzinfo=UTC)
        with sessions.begin() as session:
            upsert_papers(session, [generator.paper() for _ in range(count)], at)
    engine.dispose()
    return {"papers": papers, "days": len(days), "seconds": round(time.monotonic() - started, 1)}


def count_papers(db: Path) -> int | None:
    """Papers in an existing database file (None when there is none yet)."""
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM paper").fetchone()[0])


# -- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server subprocess on a free port, its output collected in a file."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            [a.replace("{port}", str(self.port)) for a in args],
            env=env, cwd=cwd, stdout=self.handle, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, path: str, ready: int = 0, timeout: float = 900.0) -> None:
        """Until ``path`` answers and ``ready`` search indexes are built (per the log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"server exited:\n{self.log.read_text()}")
            if self.log.read_text().count("search index built") >= ready:
                try:
                    if httpx.get(self.url(path), timeout=5).status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
        raise SystemExit(f"server not ready:\n{self.log.read_text()}")

    def rss_mb(self) -> list[float]:
        """Resident memory of each server process (the children when there are any)."""
        pids = _children(self.process.pid) or [self.process.pid]
        return [round(_rss_kb(pid) / 1024, 1) for pid in pids]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.handle.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"resource_tracker" not in cmd:
                found.append(int(entry.name))
    return sorted(found)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- wrk --------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package when run as root, else says how."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing Debian's wrk (apt-get install wrk) ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench/web.py needs wrk: sudo apt-get install wrk")
    return found


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms), and errors from ``wrk --latency`` output."""
    result: dict[str, Any] = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
    }
    for pct in ("50", "75", "90", "99"):
        found = re.search(rf"^\s+{pct}%\s+([\d.]+\w+)", output, re.M)
        result[f"p{pct}_ms"] = round(_ms(found.group(1)), 2) if found else None
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    result["socket_errors"] = socket_errors.group(1) if socket_errors else ""
    return result


def run_wrk(
    wrk: str,
    url: str,
    duration: int,
    script: Path | None = None,
    headers: Sequence[str] = (),
) -> dict[str, Any]:
    """One wrk run: -t2 -c64 for ``duration`` seconds, with the load average around it."""
    before = os.getloadavg()
    args = [wrk, "-t2", "-c64", f"-d{duration}s", "--latency", "--timeout", "10s"]
    if script is not None:
        args += ["-s", str(script)]
    for header in headers:
        args += ["-H", header]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True)
    result = parse_wrk(done.stdout)
    result["load_before"] = [round(x, 2) for x in before]
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["command"] = " ".join(a if a != url else f"'{url}'" for a in [*args, url])
    return result


def warm_up(wrk: str, url: str, workers: int) -> None:
    """Fill every server process's cache for ``url`` (the first build is not what we measure):
    requests on fresh connections, which the kernel spreads over the processes, then 2 s of
    wrk that are not recorded."""
    for _ in range(10 * workers):
        httpx.get(url, timeout=300)
    subprocess.run([wrk, "-t2", "-c64", "-d2s", url], capture_output=True, check=True)


def cold_queries(server: Server) -> list[dict[str, Any]]:
    """Each realistic query once (not cached yet): its latency as a browser would see it."""
    out = []
    with httpx.Client(timeout=120) as client:
        for query in COLD_QUERIES:
            started = time.monotonic()
            page = client.get(server.url(f"/api/papers?q={quote(query)}"))
            elapsed = time.monotonic() - started
            out.append(
                {"query": query, "ms": round(elapsed * 1000, 1), "total": page.json()["total"]}
            )
    return out


# -- the run ----------------------------------------------------------------------------------


def measure(args: argparse.Namespace, db: Path, work: Path) -> dict[str, Any]:
    wrk = ensure_wrk()
    env = {**os.environ, "MAILER_DATABASE_URL": f"sqlite:///{db}"}
    env.update(MAILER_SECRET_KEY="bench-" + "k" * 40, MAILER_LOG_LEVEL="INFO")
    python = sys.executable
    runs: dict[str, Any] = {}
    ceiling = Server(
        [python, "-m", "uvicorn", "minimal_asgi:app", "--app-dir", str(ROOT / "bench"),
         "--port", "{port}", "--workers", str(args.workers), "--log-level", "warning",
         "--no-access-log"],
        env, work, work / "ceiling.log",
    )  # fmt: skip
    try:
        ceiling.wait("/")
        runs["ceiling"] = run_wrk(wrk, ceiling.url("/"), args.duration)
        print_run("ceiling", runs["ceiling"])
    finally:
        ceiling.stop()
    mailer = Server(
        [python, "-m", "mailer", "web", "--port", "{port}", "--workers", str(args.workers)],
        env, work, work / "mailer.log",
    )  # fmt: skip
    try:
        started = time.monotonic()
        mailer.wait("/healthz", ready=args.workers)
        ready_s = round(time.monotonic() - started, 1)
        targets = {
            "static": "/static/app.css",
            "papers": "/papers",
            "search": f"/papers?q={quote(SEARCH)}",
            "signup": "/",
        }
        for name, path in targets.items():
            warm_up(wrk, mailer.url(path), args.workers)
            runs[name] = run_wrk(wrk, mailer.url(path), args.duration)
            print_run(name, runs[name])
        # As a browser asks (wrk sends no Accept-Encoding): the same page, gzipped.
        runs["papers-gzip"] = run_wrk(
            wrk, mailer.url("/papers"), args.duration, headers=["Accept-Encoding: gzip"]
        )
        print_run("papers-gzip", runs["papers-gzip"])
        cold = cold_queries(mailer)  # before the uncached run, which leaves a queue behind
        script = work / "uncached.lua"
        script.write_text(UNCACHED_LUA % quote(SEARCH, safe=""))
        runs["search-uncached"] = run_wrk(wrk, mailer.url("/"), args.duration, script)
        print_run("search-uncached", runs["search-uncached"])
        rss = mailer.rss_mb()
        builds = re.findall(
            r"search index built papers=(\d+) seconds=([\d.]+)", mailer.log.read_text()
        )
    finally:
        mailer.stop()
    return {"runs": runs, "cold": cold, "rss_mb": rss, "ready_s": ready_s, "index_builds": builds}


def print_run(name: str, run: dict[str, Any]) -> None:
    load = f"{run['load_before'][0]:.2f}->{run['load_after'][0]:.2f}"
    print(
        f"{name:16s} {run['rps']:9.0f} req/s  p50 {run['p50_ms']:7.2f} ms"
        f"  p99 {run['p99_ms']:7.2f} ms  non-2xx {run['non_2xx']:<5d} load {load}",
        flush=True,
    )


def verdicts(runs: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name in ("papers", "search", "signup"):
        run = runs[name]
        met = run["rps"] >= GOAL_RPS and run["p99_ms"] < GOAL_P99_MS and run["non_2xx"] == 0
        out[name] = "met" if met else "missed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--papers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--db", type=Path, help="database file to reuse or create and keep")
    parser.add_argument("--quick", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailer-web-bench-") as tmp:
        work = Path(tmp)
        db = args.db or work / "year.db"
        generated: dict[str, Any] = {"reused": str(db), "papers": count_papers(db)}
        if not db.exists():
            print(f"generating {args.papers:,} papers into {db} ...", flush=True)
            generated = build_database(f"sqlite:///{db}", args.papers)
            print(f"  {generated}", flush=True)
        result = measure(args, db, work)
    result.update(
        benchmark="web",
        command="python bench/web.py " + " ".join(sys.argv[1:]),
        database=generated,
        server_processes=args.workers,
        goal={"rps": GOAL_RPS, "p99_ms": GOAL_P99_MS, "connections": 64},
        verdict=verdicts(result["runs"]),
        machine={
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "shared": "yes: other engineers run tests and benchmarks on the same 2 cores",
        },
    )
    print(f"\nserver processes: {args.workers}; RSS per process (MB): {result['rss_mb']}")
    builds = result["index_builds"]
    print(f"search index builds (papers, s): {builds}; ready after {result['ready_s']} s")
    print("cold searches (ms): " + ", ".join(f"{c['query']!r} {c['ms']}" for c in result["cold"]))
    print(f"goal >= {GOAL_RPS:.0f} req/s and p99 < {GOAL_P99_MS:.0f} ms: {result['verdict']}")
    if not args.quick:
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
