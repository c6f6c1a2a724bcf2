"""An SMTP sink for benchmarks, in its own process: records when each message was accepted.

python bench/sink.py PORT      # what ``Sink()`` starts; one ``dump DIR`` line per report

Memory stays flat at a million messages: counts and times are running figures, and an 8-byte
hash of each Message-ID and recipient goes into a typed array (16 bytes a message, to count
duplicates); bodies are kept for the first ``SAMPLES`` only.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from array import array
from itertools import pairwise
from pathlib import Path
from typing import Any

from processes import cpu_seconds, vm_hwm_kib

SAMPLES = 200  # accepted messages kept per dump (what a raw run re-sends)


def sink_main(port: int) -> None:
    """An aiosmtpd server that records when each message was accepted and how large it was.

    Each line ``dump DIR`` on stdin writes what was recorded since the last dump to
    ``DIR/stats.json`` (and the first ``SAMPLES`` messages to ``DIR/NNN.eml``), then starts
    afresh; ``peek DIR`` writes the same counts without the samples and without starting
    afresh (a progress reading); end of input stops the server.
    """
    from aiosmtpd.controller import Controller

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        for line in sys.stdin:
            verb, _, where = line.strip().partition(" ")
            if verb == "peek":
                _write_stats(Path(where), recorder.stats())
                continue
            current, recorder.current = recorder.current, Recorded()
            _write_dump(Path(where), current)
    finally:
        controller.stop()


class Recorded:
    """What the sink accepted since the last dump: running figures and two flat hash arrays."""

    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.total_bytes = 0
        self.message_ids = array("Q")  # 8-byte hashes: duplicates found by sorting at the end
        self.recipients = array("Q")
        self.samples: list[bytes] = []

    def add(self, data: bytes, recipients: list[str]) -> None:
        now = time.time()
        self.first = now if self.first is None else min(self.first, now)
        self.last = now if self.last is None else max(self.last, now)
        self.count += 1
        self.total_bytes += len(data)
        self.message_ids.append(_hash(_message_id(data)))
        self.recipients.extend(_hash(r.lower().encode()) for r in recipients)
        if len(self.samples) < SAMPLES:
            self.samples.append(data)

    def stats(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "mean_bytes": round(self.total_bytes / self.count) if self.count else 0,
        }


class Recorder:
    """The aiosmtpd handler: every accepted message goes into the current ``Recorded``."""

    def __init__(self) -> None:
        self.current = Recorded()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        self.current.add(data, list(envelope.rcpt_tos))
        return "250 OK"

    def stats(self) -> dict[str, Any]:
        return self.current.stats()


def _message_id(data: bytes) -> bytes:
    """The Message-ID header's value (empty when there is none), read from the header block."""
    end = data.find(b"\r\n\r\n")
    head = (data if end < 0 else data[:end]).lower()
    start = head.find(b"\nmessage-id:")
    if start < 0:
        return b""
    stop = head.find(b"\n", start + 1)
    return head[start + len(b"\nmessage-id:") : None if stop < 0 else stop].strip()


def _hash(value: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(value, digest_size=8).digest(), "little")


def _duplicates(hashes: array[int]) -> int:
    """Entries that repeat an earlier one (a hash seen k times counts k - 1)."""
    ordered = sorted(hashes)
    return sum(1 for a, b in pairwise(ordered) if a == b)


def _write_dump(folder: Path, recorded: Recorded) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(recorded.samples):
        (folder / f"{n:03d}.eml").write_bytes(data)
    stats = recorded.stats() | {
        "duplicate_message_ids": _duplicates(recorded.message_ids),
        "duplicate_recipients": _duplicates(recorded.recipients),
    }
    _write_stats(folder, stats)


def _write_stats(folder: Path, stats: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "stats.json.tmp"
    partial.write_text(json.dumps(stats))
    partial.replace(folder / "stats.json")  # whole or absent for the reader


class Sink:
    """The recording sink in its own process."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.port)], stdin=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sink did not start")

    def dump(self, folder: Path) -> dict[str, Any]:
        """What the sink accepted since the last dump (samples kept in ``folder``)."""
        return self._ask("dump", folder)

    def peek(self, folder: Path) -> dict[str, Any]:
        """What the sink accepted since the last dump so far: count, first and last times."""
        return self._ask("peek", folder)

    def _ask(self, verb: str, folder: Path) -> dict[str, Any]:
        assert self.proc.stdin is not None
        stats = folder / "stats.json"
        stats.unlink(missing_ok=True)
        self.proc.stdin.write(f"{verb} {folder}\n")
        self.proc.stdin.flush()
        while not stats.exists():
            time.sleep(0.02)
        result: dict[str, Any] = json.loads(stats.read_text())
        return result

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def peak_rss_mib(self) -> float:
        return vm_hwm_kib(self.proc.pid) / 1024

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


if __name__ == "__main__":
    sink_main(int(sys.argv[1]))
