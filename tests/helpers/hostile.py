"""Payloads a hostile or broken upstream serves, for ``LocalHTTPServer`` routes and files.

Each builder returns bytes (or a ``Canned`` answer) small enough to hold in a test, except where
a factory streams: ``gzip_bomb`` compresses a gigabyte of zeros into about a megabyte, and
``zeros`` streams without ever holding what it sends.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Iterator
from typing import Any

from tests.helpers.http_server import Canned

JSON = "application/json"
ATOM = "application/atom+xml"
RSS = "application/rss+xml"
MIB = 1024 * 1024


def hf_item(arxiv_id: str, title: str = "A paper", **paper: Any) -> dict[str, Any]:
    """One Hugging Face daily-papers item; ``paper`` overrides fields of its paper object."""
    return {"paper": {"id": arxiv_id, "title": title, "summary": "An abstract.", **paper}}


def hf_json(*items: dict[str, Any]) -> bytes:
    """A daily-papers response holding ``items``."""
    return json.dumps(list(items)).encode()


def huge_int_items() -> bytes:
    """One good item, one with ``upvotes: 10**40``, one with negative comments (out of range)."""
    return hf_json(
        hf_item("2508.00001", "Good paper", upvotes=7),
        hf_item("2508.00002", "Overflowing upvotes", upvotes=10**40),
        {**hf_item("2508.00003", "Negative comments"), "numComments": -5},
    )


def deep_json(depth: int = 200_000) -> bytes:
    """A JSON document nested ``depth`` arrays deep (a recursive parser overflows its stack)."""
    return b"[" * depth + b"]" * depth


def deep_xml(depth: int = 200_000) -> bytes:
    """An Atom feed whose one entry's title nests ``depth`` elements deep."""
    nested = b"<b>" * depth + b"x" + b"</b>" * depth
    return (
        b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
        b"<entry><id>oai:arXiv.org:2508.00009</id><title>" + nested + b"</title></entry></feed>"
    )


def nul_and_controls() -> bytes:
    """Items whose text carries NUL, other control characters and a lone surrogate."""
    return hf_json(
        hf_item("2508.00011", "Rob\u0000ots\u0007 and \u001bcontrol", summary="a\u0000b"),
        hf_item("2508.00012", "Lone \ud800 surrogate", authors=[{"name": "Ann\u0000 Lee"}]),
    )


def huge_title(size: int = 5 * MIB + 600 * 1024) -> bytes:
    """One item with a title of ``size`` characters (5.6 MB by default) and a huge abstract."""
    return hf_json(
        hf_item("2508.00021", "robots " * (size // 7), summary="grasping " * 200_000),
    )


def many_items(count: int = 100_000) -> bytes:
    """A daily-papers response with ``count`` small, valid, distinct items."""
    items = (
        hf_item(f"{2000 + i // 90000:04d}.{i % 90000 + 10000:05d}", f"Paper {i}")
        for i in range(count)
    )
    return json.dumps(list(items)).encode()


def gzip(data: bytes) -> bytes:
    """``data`` gzip-compressed."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


@functools.cache
def gzip_bomb(size: int = 1024 * MIB) -> bytes:
    """``size`` zero bytes gzip-compressed (1 GiB -> about 1 MB), built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MIB)
    parts = [packer.compress(block) for _ in range(size // MIB)]
    return b"".join(parts) + packer.flush()


def bomb_answer(content_type: str = JSON, size: int = 1024 * MIB) -> Canned:
    """A gzip bomb of ``size`` zero bytes served as a gzip-encoded body."""
    body = gzip_bomb(size)
    return Canned(body, content_type=content_type, headers={"Content-Encoding": "gzip"})


def bad_gzip_answer() -> Canned:
    """A body that says it is gzip and is not."""
    return Canned(
        b"\x1f\x8bthis is not gzip", content_type=JSON, headers={"Content-Encoding": "gzip"}
    )


def redirect_loop(path: str) -> Canned:
    """A redirect to ``path`` itself, forever."""
    return Canned(status=302, headers={"Location": path})


def drip_answer(body: bytes, interval: float = 0.05) -> Canned:
    """``body`` sent one byte every ``interval`` seconds (a per-read timeout never fires)."""
    return Canned(body, content_type=JSON, drip=interval)


def zeros(total: int, chunk: int = MIB) -> Iterator[bytes]:
    """``total`` zero bytes in chunks, never held at once."""
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block
