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
        self.fields = fields  # each paper's stems, in order
        # The same as text, each stem between spaces of its own (two between stems): a phrase
        # is counted with str.count, which then also counts back-to-back occurrences ("a b a
        # b"), since one occurrence's closing space is not the next one's opening space.
        self.texts = [_spaced(stems) for stems in fields]
        # Tuples of ints, unlike lists, drop out of the garbage collector's view: a batch holds
        # ~100k of them, and every full collection would walk them all (a large share of
        # explanation time).
        self.positions: dict[str, dict[int, tuple[int, ...]]] = {}
        self.bits: dict[str, int] = {}
        for p, stems in enumerate(fields):
            self._add(p, stems)

    def _add(self, p: int, stems: tuple[str, ...]) -> None:
        """Index one paper's stems: grouped within the paper first, so the shared maps are
        touched once per distinct stem, not once per token (a planner builds this before
        its first digest: half the time of filling them token by token)."""
        local: dict[str, list[int]] = {}
        for i, stem in enumerate(stems):
            local.setdefault(stem, []).append(i)
        bit = 1 << p
        positions, bits = self.positions, self.bits
        for stem, found in local.items():
            per_paper = positions.get(stem)
            if per_paper is None:
                positions[stem] = {p: tuple(found)}
                bits[stem] = bit
            else:
                per_paper[p] = tuple(found)
                bits[stem] |= bit

    def counts(self, stems: tuple[str, ...]) -> dict[int, int]:
        """How often the phrase ``stems`` occurs in each paper that has it."""
        candidates = -1
        for stem in stems:
            candidates &= self.bits.get(stem, 0)
        if not candidates:
            return {}
        first = self.positions[stems[0]]
        if len(stems) == 1:
            return {p: len(at) for p, at in first.items()}
        if _overlaps_itself(stems):  # "a a" occurs twice in "a a a": str.count finds one
            size, fields = len(stems), self.fields
            found: dict[int, int] = {}
            for p in bit_list(candidates):
                tokens = fields[p]
                n = sum([tokens[i : i + size] == stems for i in first[p]])
                if n:
                    found[p] = n
            return found
        needle, texts = _spaced(stems), self.texts
        counted = {p: texts[p].count(needle) for p in bit_list(candidates)}
        return {p: n for p, n in counted.items() if n}


def _spaced(stems: Sequence[str]) -> str:
    """Stems with a space on each side of each: " a  b  c "."""
    return f" {'  '.join(stems)} "


def _overlaps_itself(stems: tuple[str, ...]) -> bool:
    """True when a phrase can overlap its next occurrence (a proper prefix is a suffix)."""
    return any(stems[:k] == stems[-k:] for k in range(1, len(stems)))
