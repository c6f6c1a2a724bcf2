"""An SMTP sink for benchmarks, in its own process: records when each message was accepted.

python bench/sink.py PORT      # what ``Sink()`` starts; one ``dump DIR`` line per report
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from processes import cpu_seconds, vm_hwm_kib

SAMPLES = 200  # accepted messages kept per dump (what a raw run re-sends)


def sink_main(port: int) -> None:
    """An aiosmtpd server that records when each message was accepted and how large it was.

    Each line ``dump DIR`` on stdin writes what was recorded since the last dump to
    ``DIR/stats.json`` (and the first ``SAMPLES`` messages to ``DIR/NNN.eml``), then starts
    afresh; end of input stops the server.
    """
    from aiosmtpd.controller import Controller

    class Recorder:
        def __init__(self) -> None:
            self.times: list[float] = []
            self.sizes: list[int] = []
            self.samples: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            data = envelope.original_content or envelope.content
            self.times.append(time.time())
            self.sizes.append(len(data))
            if len(self.samples) < SAMPLES:
                self.samples.append(data)
            return "250 OK"

    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        for line in sys.stdin:
            folder = Path(line.split(maxsplit=1)[1].strip())
            times, sizes, samples = recorder.times, recorder.sizes, recorder.samples
            recorder.times, recorder.sizes, recorder.samples = [], [], []
            _write_dump(folder, times, sizes, samples)
    finally:
        controller.stop()


def _write_dump(folder: Path, times: list[float], sizes: list[int], samples: list[bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, data in enumerate(samples):
        (folder / f"{n:03d}.eml").write_bytes(data)
    stats = {
        "count": len(times),
        "first": min(times, default=None),
        "last": max(times, default=None),
        "mean_bytes": round(sum(sizes) / len(sizes)) if sizes else 0,
    }
    (folder / "stats.json").write_text(json.dumps(stats))


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
        assert self.proc.stdin is not None
        stats = folder / "stats.json"
        stats.unlink(missing_ok=True)
        self.proc.stdin.write(f"dump {folder}\n")
        self.proc.stdin.flush()
        while not stats.exists():
            time.sleep(0.05)
        time.sleep(0.05)  # written in one call; let it land
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
