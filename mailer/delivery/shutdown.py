"""Graceful shutdown: SIGTERM/SIGINT set a stop event that ``deliver_due`` honours."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[asyncio.Event]:
    """While inside, SIGTERM and SIGINT set ``stop`` instead of killing the process."""
    loop = asyncio.get_running_loop()

    def _request_stop(signum: int) -> None:
        log.info(
            "%s received: finishing messages in flight, claiming no more",
            signal.Signals(signum).name,
        )
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, _request_stop, signum)
    try:
        yield stop
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
