"""Process-wide tuning, applied by the command runtime only (the CLI and the daemon's jobs).

Library code never changes interpreter or process settings: a test, a bench or another
program embedding ``mailer`` gets plain Python. The runtime wraps each planning and sending
run in ``tuned()`` and hands ``render_child_setup`` to the render processes it starts.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation while a run is active.

Matching a chunk of subscribers grows caches (per term, interest and paper) that only grow
until the chunk is dropped and hold no reference cycles. CPython collects its youngest
generation every 700 net allocations, and walks the whole heap each time its long-lived part
has grown by a quarter: the matching bench's 10k subscribers cost a thousand young and seven
full collections, which prove cache entries alive over and over. Every 10,000 allocations
makes that 69 and one, and matching 10-20% quicker; cycles made meanwhile (a database
session, say) are still collected, in larger batches.
"""

SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while another waits for it, while a run is active.

Python's default is 5 ms. A sending run's event loop shares the process with the threads that
claim rows and record outcomes and with the render pool's result thread; each of them may
wait up to that long for the loop thread. In ten paired runs of ``bench/delivery.py`` (5,000
digests, two cores; four at 1 ms, six at 0.5 ms) the shorter interval sent more messages per
second every time, 1 to 10 % more.
"""

NICENESS = 10
"""How much lower a render process's CPU priority is than the sender's (``nice``).

The sender holds SMTP connections that wait on it: every message is four exchanges, each
delayed by as long as the sender waits for a core. Render processes only need to stay ahead
of it, so when cores are short they yield to it (and to the web server, in ``mailer run``)
rather than share equally. On two cores (``bench/delivery.py``, 5,000 digests, three rounds
each, a noisy machine) that sent 236 messages per second on average against 223.
"""

_active = {"runs": 0}
_saved: dict[str, object] = {}


@contextmanager
def tuned() -> Iterator[None]:
    """Run a planning or sending run under the tuned settings; restore them when the last
    overlapping run ends (the daemon's jobs and a web request may overlap)."""
    if _active["runs"] == 0:
        _saved.update(threshold=gc.get_threshold(), interval=sys.getswitchinterval())
        young, *older = gc.get_threshold()
        gc.set_threshold(max(YOUNG_THRESHOLD, young), *older)
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    _active["runs"] += 1
    try:
        yield
    finally:
        _active["runs"] -= 1
        if _active["runs"] == 0:
            gc.set_threshold(*_saved["threshold"])  # type: ignore[misc]
            sys.setswitchinterval(_saved["interval"])  # type: ignore[arg-type]


def render_child_setup() -> None:
    """In a render process: yield the CPU to the sender when both want it (``NICENESS``)."""
    try:
        os.nice(NICENESS)
    except (AttributeError, OSError):  # no nice() on this platform, or not allowed: run as is
        log.debug("render process runs at the sender's priority")


def freeze_heap() -> None:
    """In a web server once its search index is built: leave what is alive to the end out of
    every later garbage collection (``gc.freeze``).

    The index, templates and modules live as long as the process; without this, each full
    collection walks all of them again while requests wait (tens of milliseconds at 100,000
    papers). Objects made afterwards are collected as usual.
    """
    gc.freeze()
