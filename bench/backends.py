"""What PostgreSQL does for a bench's processes: its backends' CPU, peak memory and waits.

``BackendWatch`` polls ``pg_stat_activity`` for one database from its own connection while the
bench's processes run (every 0.2 s): for each client backend it keeps the latest CPU seconds and
peak resident set read from ``/proc`` (PostgreSQL on this machine), and it counts the samples
in each (state, wait event) pair, so "where did the time go" is answered from the database's
side as well as the client's. Sampling costs one small query per tick and a few ``/proc`` reads.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from processes import cpu_seconds, vm_hwm_kib

_ACTIVITY = (
    "SELECT pid, backend_type, state, coalesce(wait_event_type, '-'), coalesce(wait_event, '-')"
    " FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
)
# The server's own processes, which work for every database: their CPU is counted as a delta.
_SERVER = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE backend_type IN ('checkpointer', 'walwriter', 'background writer')"
)


def rss_anon_kib(pid: int) -> int:
    """A process's private resident memory now (shared buffers it touched left out)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class BackendWatch:
    """Samples the client backends of one PostgreSQL database until stopped."""

    def __init__(self, url: str, interval: float = 0.2) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.name = make_url(url).database
        self.interval = interval
        self.cpu: dict[int, float] = {}
        self.hwm: dict[int, int] = {}
        self.anon: dict[int, int] = {}
        self.waits: Counter[str] = Counter()
        self.other_cpu: dict[int, float] = {}  # autovacuum and other non-client backends
        self._engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self._server = self._server_cpu()
        self._wal = self._scalar("SELECT pg_current_wal_lsn()")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        from sqlalchemy import text

        with self._engine.connect() as conn:
            while not self._stop.wait(self.interval):
                rows = conn.execute(text(_ACTIVITY), {"name": self.name}).all()
                for pid, backend, state, kind, event in rows:
                    if backend != "client backend":
                        self.other_cpu[pid] = max(self.other_cpu.get(pid, 0.0), cpu_seconds(pid))
                        continue
                    self.waits[f"{state}|{kind}|{event}"] += 1
                    self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
                    self.hwm[pid] = max(self.hwm.get(pid, 0), vm_hwm_kib(pid))
                    self.anon[pid] = max(self.anon.get(pid, 0), rss_anon_kib(pid))

    def _scalar(self, query: str) -> Any:
        from sqlalchemy import text

        with self._engine.connect() as conn:
            return conn.execute(text(query)).scalar_one()

    def _server_cpu(self) -> dict[int, float]:
        from sqlalchemy import text

        with self._engine.connect() as conn:
            return {pid: cpu_seconds(pid) for (pid,) in conn.execute(text(_SERVER))}

    def stop(self) -> dict[str, Any]:
        """Stop sampling: backends' CPU seconds (to the last sample), peaks, wait counts."""
        self._stop.set()
        self._thread.join()
        server = sum(cpu - self._server.get(pid, cpu) for pid, cpu in self._server_cpu().items())
        wal = self._scalar(f"SELECT pg_current_wal_lsn() - '{self._wal}'::pg_lsn")
        self._engine.dispose()
        total = sum(self.waits.values()) or 1
        return {
            "backends": len(self.cpu),
            "backend_cpu_s": round(sum(self.cpu.values()), 2),
            "autovacuum_cpu_s": round(sum(self.other_cpu.values()), 2),
            "server_cpu_s": round(server, 2),
            "wal_bytes": int(wal),
            "backend_peak_rss_mib": round(max(self.hwm.values(), default=0) / 1024, 1),
            "backend_peak_private_mib": round(max(self.anon.values(), default=0) / 1024, 1),
            "samples": sum(self.waits.values()),
            "waits": {k: round(v / total, 3) for k, v in self.waits.most_common(8)},
        }
