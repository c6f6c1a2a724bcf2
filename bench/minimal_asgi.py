"""The machine's ceiling for bench/web.py: the smallest ASGI app uvicorn can serve.

It answers every request with the same small page, so wrk against it measures uvicorn, the
loopback and wrk itself on this machine, with nothing of ours in the way.
"""

from __future__ import annotations

from typing import Any

BODY = b"<!doctype html><title>ceiling</title><p>" + b"x" * 2000 + b"</p>\n"
HEADERS = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"%d" % len(BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer 200 with ``BODY``."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
