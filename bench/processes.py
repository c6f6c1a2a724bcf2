"""Measuring a benchmark's processes from outside: wall and CPU seconds, peak RSS of a tree."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kib(pid: int) -> int:
    """A process's peak resident set so far (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found.extend(int(child) for child in text)
    except OSError:
        pass
    return found


class PeakWatch:
    """Samples the peak RSS and CPU seconds of a process and of each of its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, int] = {}
        self.cpu: dict[int, float] = {}  # to the last sample before each process ended
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            todo = [self.pid]
            while todo:
                pid = todo.pop()
                self.peaks[pid] = max(self.peaks.get(pid, 0), vm_hwm_kib(pid))
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
                if pid not in self.names:
                    self.names[pid] = _short_command(pid)
                todo.extend(_children(pid))

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        others = [kib for pid, kib in self.peaks.items() if pid != self.pid]
        return {
            "peak_rss_mib": round(self.peaks.get(self.pid, 0) / 1024, 1),
            "children_peak_rss_mib": round(max(others, default=0) / 1024, 1),
            "children": len(others),
        }

    def each(self) -> list[dict[str, Any]]:
        """Every process seen, the watched one first: pid, what it runs, peak RSS, CPU."""
        return [
            {
                "pid": pid,
                "command": self.names.get(pid, ""),
                "peak_rss_mib": round(self.peaks[pid] / 1024, 1),
                "cpu_s": round(self.cpu.get(pid, 0.0), 2),
            }
            for pid in sorted(self.peaks, key=lambda pid: (pid != self.pid, pid))
            if self.peaks[pid]  # a process gone before its first sample
        ]


def _short_command(pid: int) -> str:
    """A process's command line, cut short (spawned Python children show what they run)."""
    try:
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    words = [
        Path(p.decode(errors="replace")).name if i == 0 else p.decode(errors="replace")
        for i, p in enumerate(parts)
        if p
    ]
    return " ".join(words)[:120]


def run_process(
    command: list[str], env: dict[str, str], *, stdout: Any = subprocess.PIPE
) -> dict[str, Any]:
    """Run a command to its end: wall and CPU seconds (with its children), peak RSS, output."""
    started = time.time()
    proc = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
    watch = PeakWatch(proc.pid)
    out, err = proc.communicate()
    ended = time.time()
    peaks = watch.stop()
    usage = children_cpu()
    if proc.returncode:
        raise SystemExit(f"{command[:4]} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"started": started, "seconds": ended - started, "out": out or "", **peaks, **usage}


_CPU_SEEN = [0.0]


def children_cpu() -> dict[str, float]:
    """CPU seconds of the children reaped since the last call (with their own children)."""
    times = os.times()
    total = times.children_user + times.children_system
    spent, _CPU_SEEN[0] = total - _CPU_SEEN[0], total
    return {"cpu_s": round(spent, 2)}
