"""The compact form of what a digest lists: one binary value per digest, not one row per paper.

Only what cannot be recomputed is stored: each listed paper's id and score in rank order, and,
in digests ranked by the reader's votes, the learned contribution and the liked example a
"You may also like" paper resembles (its title: the vote may be withdrawn later). Which
interests matched, the matched words and the highlight spans are recomputed from the paper and
the profile text the digest was planned with (see ``mailer.db.reasons``).

Layout, little-endian: a header ``version (u8), flags (u8), count (u16)``, then ``count`` paper
ids (i64), ``count`` scores (f64); with the LEARNED flag ``count`` learned values (f64, NaN for
none); with the RESEMBLES flag the rest is UTF-8 JSON, ``[[position, title], ...]``. About
16 bytes per paper: a digest of 20 papers takes 324 bytes, where one JSON row per paper took
about 150 bytes each before indexes.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

VERSION = 1
LEARNED = 1
RESEMBLES = 2
_HEADER = struct.Struct("<BBH")
MAX_LISTED = 0xFFFF


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed paper as stored: what re-matching cannot give back."""

    paper_id: int
    score: float
    learned: float | None = None
    resembles: str | None = None


class ListingError(ValueError):
    """A stored listing that is not in a known layout."""


def pack(listed: Sequence[Listed]) -> bytes:
    """The stored value of a digest's papers, in rank order."""
    count = len(listed)
    if count > MAX_LISTED:
        raise ValueError(f"a digest lists at most {MAX_LISTED} papers, not {count}")
    learned = [item.learned for item in listed]
    resembles = [[i, item.resembles] for i, item in enumerate(listed) if item.resembles is not None]
    flags = (LEARNED if any(v is not None for v in learned) else 0) | (
        RESEMBLES if resembles else 0
    )
    parts = [
        _HEADER.pack(VERSION, flags, count),
        struct.pack(f"<{count}q", *(item.paper_id for item in listed)),
        struct.pack(f"<{count}d", *(item.score for item in listed)),
    ]
    if flags & LEARNED:
        parts.append(struct.pack(f"<{count}d", *(math.nan if v is None else v for v in learned)))
    if flags & RESEMBLES:
        parts.append(json.dumps(resembles, ensure_ascii=False, separators=(",", ":")).encode())
    return b"".join(parts)


def unpack(value: bytes) -> list[Listed]:
    """The listed papers of a stored value, in rank order; ListingError if it is malformed."""
    try:
        version, flags, count = _HEADER.unpack_from(value)
        if version != VERSION:
            raise ListingError(f"unknown listing version {version}")
        offset = _HEADER.size
        ids = struct.unpack_from(f"<{count}q", value, offset)
        offset += 8 * count
        scores = struct.unpack_from(f"<{count}d", value, offset)
        offset += 8 * count
        learned: Sequence[float | None] = [None] * count
        if flags & LEARNED:
            raw = struct.unpack_from(f"<{count}d", value, offset)
            learned = [None if math.isnan(v) else v for v in raw]
            offset += 8 * count
        resembles: dict[int, str] = {}
        if flags & RESEMBLES:
            resembles = {int(i): str(title) for i, title in json.loads(value[offset:])}
        elif offset != len(value):
            raise ListingError("trailing bytes after the listing")
    except (struct.error, ValueError, TypeError) as exc:
        if isinstance(exc, ListingError):
            raise
        raise ListingError(f"malformed listing: {exc}") from exc
    return [
        Listed(paper_id, score, learned[i], resembles.get(i))
        for i, (paper_id, score) in enumerate(zip(ids, scores, strict=True))
    ]


def paper_ids(value: bytes) -> tuple[int, ...]:
    """Only the listed paper ids (what "never the same paper twice" reads)."""
    try:
        version, _, count = _HEADER.unpack_from(value)
        if version != VERSION:
            raise ListingError(f"unknown listing version {version}")
        return struct.unpack_from(f"<{count}q", value, _HEADER.size)
    except struct.error as exc:
        raise ListingError(f"malformed listing: {exc}") from exc
