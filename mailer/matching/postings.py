"""Positional postings for one text field: stem -> bitset of papers and token positions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def iter_bits(bits: int) -> Iterator[int]:
    """Indices of the set bits, lowest first."""
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


def bit_list(bits: int) -> list[int]:
    """Indices of the set bits, lowest first, as a list (quicker than a generator)."""
    found: list[int] = []
    add = found.append
    while bits:
        low = bits & -bits
        add(low.bit_length() - 1)
        bits ^= low
    return found


class Postings:
    """Per-field positions of each stem: stem -> {paper index: (token positions)}."""

    def __init__(self, fields: Sequence[tuple[str, ...]]) -> None:
        building: dict[str, dict[int, list[int]]] = {}
        for p, stems in enumerate(fields):
            for i, stem in enumerate(stems):
                building.setdefault(stem, {}).setdefault(p, []).append(i)
        # Tuples of ints, unlike lists, drop out of the garbage collector's view: a batch holds
        # ~100k of them, and every full collection would walk them all (a large share of
        # explanation time).
        self.positions: dict[str, dict[int, tuple[int, ...]]] = {
            stem: {p: tuple(found) for p, found in per_paper.items()}
            for stem, per_paper in building.items()
        }
        self.bits: dict[str, int] = {
            stem: sum(1 << p for p in per_paper) for stem, per_paper in self.positions.items()
        }

    def counts(self, stems: tuple[str, ...]) -> dict[int, int]:
        """How often the phrase ``stems`` occurs in each paper that has it."""
        candidates = -1
        for stem in stems:
            candidates &= self.bits.get(stem, 0)
        if not candidates:
            return {}
        first = self.positions[stems[0]]
        if len(stems) == 1:
            return {p: len(first[p]) for p in iter_bits(candidates)}
        later = [self.positions[s] for s in stems[1:]]
        found: dict[int, int] = {}
        for p in iter_bits(candidates):
            sets = [set(positions[p]) for positions in later]
            n = sum(all(i + k + 1 in s for k, s in enumerate(sets)) for i in first[p])
            if n:
                found[p] = n
        return found
