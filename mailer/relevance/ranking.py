"""The learned ranking on top of the keyword matches: re-rank, sink, and "You may also like".

Scores are standardised over the day's papers (how far above the average paper a paper is,
in standard deviations), so one scale fits every reader and every store. A keyword match
ranks by its keyword score plus that learned score; a paper the keywords missed is suggested
only when it stands well above the day's average (``tuning.also_above``) and resembles a liked
example, and it ranks by its learned score alone (it matched no keyword). There are
``ALSO_CAP`` suggestions at most, or as many as the places the keyword matches leave free in
the digest up to ``ALSO_ROOM_CAP`` (``also_room``). The "You may also like" papers are shown
together, so the section goes where its best paper would rank on that one scale: the keyword
matches scoring below it sink under it, in their order; with no suggestion, none sink. (The first
version sank every match under half a standard deviation, whatever its keyword score: one
liked paper then pushed most of a careful profile's matches under a weak suggestion.) Nothing
here sees excluded or already-sent papers unless the caller hands them in: the caller passes
them as ``blocked``.

The knobs (``tuning.Tuning``) are round values, checked leave-one-persona-out on the
relevance bench's six development personas (``bench/relevance_tune.py``). Tried on that bench
and lost, in sample already (readers' mean nDCG@10 careful / terse, against 0.879 / 0.773):
shrinking the learned weight by the evidence, n / (n + k) for n votes (k = 3: 0.860 / 0.768;
k = 10: 0.811 / 0.749); sinking only the matches nearer a disliked example than any liked one
(0.874 / 0.758); reciprocal rank fusion of the keyword and learned orders instead of the sum
(c = 60; with that sinking 0.845 / 0.728 against the sum's 0.862 / 0.717, and it leaves no
score to place the section by); keyword scores standardised like the learned ones (0.837 /
0.704); choosing the "also like" papers by their nearest liked example rather than the query
(0.861 / 0.771, careful R@25 0.907 -> 0.935). Tried later, still with at most five
suggestions, and lost in sample already (careful / terse nDCG@10 / R@25, against 0.879 / 0.907
and 0.773 / 0.789): blending the query's score with each paper's closeness to its nearest liked
example (a quarter of the weight: 0.876 / 0.907, 0.750 / 0.770; more was worse); admitting
suggestions by their closeness to a liked example relative to the reader's liked examples'
closeness to each other instead of a global threshold (at best 0.879 / 0.907, 0.757 / 0.761);
placing the section by its median or mean paper rather than its best (0.843 and 0.860 careful,
0.744 and 0.751 terse nDCG@10).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from mailer.relevance.model import ReaderModel
from mailer.relevance.tuning import DEFAULT, Tuning

ALSO_CAP = 5  # "also like" papers at least; more when the keyword matches leave room
# ... but never more than this: the section adds to a keyword digest, it does not replace one.
ALSO_ROOM_CAP = 10


@dataclass(frozen=True, slots=True)
class Pick:
    """A paper as the learned ranking places it."""

    index: int
    score: float  # what it was ordered by
    learned: float  # the learned contribution (standard deviations x weight)
    resembles: int | None = None  # the liked example it is closest to, for "also like"


@dataclass(frozen=True, slots=True)
class Personalised:
    """The reader's digest order: picks, then "You may also like", then the sunk matches."""

    picks: tuple[Pick, ...]
    also: tuple[Pick, ...]
    sunk: tuple[Pick, ...]

    @property
    def ordered(self) -> tuple[Pick, ...]:
        """Every listed paper in the order the reader sees them."""
        return self.picks + self.also + self.sunk


def standardised(model: ReaderModel, window: sparse.csr_matrix) -> np.ndarray:
    """Each window paper's learned score in standard deviations from the window's mean."""
    # ``dot``, not ``@``: scipy's ``@`` takes a slower path for a 1-d operand (1.4 vs 0.1 ms).
    raw = np.asarray(window.dot(model.query)).ravel()
    if raw.size == 0:
        return raw
    # numpy's ``std`` and ``mean`` spelled out (the same sums and divisions, so the same
    # floats): its wrappers cost more than the arithmetic on a thousand papers, and the
    # deviations are computed once instead of twice.
    deviations = raw - np.add.reduce(raw) / raw.size
    spread = float(np.sqrt(np.add.reduce(deviations * deviations) / raw.size))
    return deviations / spread if spread > 0 else np.zeros_like(raw)


def personalise(
    model: ReaderModel,
    window: sparse.csr_matrix,
    rows: Sequence[int],
    scores: Sequence[float],
    *,
    blocked: Iterable[int] | np.ndarray = (),
    limit: int = 25,
    also_cap: int = ALSO_CAP,
    tuning: Tuning = DEFAULT,
) -> Personalised:
    """Re-rank ``keyword`` (every keyword match) and pick the "also like" papers.

    ``window`` holds the day's papers as rows; ``blocked`` are rows never to suggest
    (excluded by the profile, already sent, voted on already), any iterable or an array of
    row numbers.
    """
    z = standardised(model, window)
    where = np.asarray(rows, dtype=np.int64)
    learned = tuning.learned * z[where]
    combined = np.asarray(scores, dtype=np.float64) + learned
    # Best first; a stable sort keeps the keyword order between equal scores.
    top = np.argsort(-combined, kind="stable")[:limit].tolist()
    ranked = [Pick(int(where[i]), float(combined[i]), float(learned[i])) for i in top]
    skip = np.zeros(z.size, dtype=bool)  # a mask, not a set: no Python int per paper
    skip[where] = True
    listed = blocked if isinstance(blocked, np.ndarray) else np.fromiter(blocked, dtype=np.int64)
    skip[listed] = True
    cap = also_room(also_cap, limit, len(where), tuning)
    also = _also(model, window, z, skip, cap, tuning)
    picks, sunk = _split(ranked, z, also, tuning)
    return Personalised(picks, also, sunk)


def also_room(cap: int, limit: int, matches: int, tuning: Tuning = DEFAULT) -> int:
    """How many "You may also like" papers a digest of ``limit`` papers may take.

    ``cap`` always (0 turns the section off); with ``tuning.also_fills``, the places the
    ``matches`` keyword matches leave free too, up to ``ALSO_ROOM_CAP``: a hurried reader's
    two words may match only a handful of papers of the ``limit`` the digest holds, but the
    keywords stay the contract, so suggestions never outnumber them by far."""
    if cap <= 0 or not tuning.also_fills:
        return max(cap, 0)
    return max(cap, min(limit - matches, ALSO_ROOM_CAP))


def _split(
    ranked: list[Pick], z: np.ndarray, also: tuple[Pick, ...], tuning: Tuning
) -> tuple[tuple[Pick, ...], tuple[Pick, ...]]:
    """The keyword matches above the "also like" section and those that sink below it."""
    if tuning.sink_below is not None:  # the first version: a fixed standardised threshold
        down = [z[p.index] < tuning.sink_below for p in ranked]
    else:  # the section ranks where its best paper would: what scores below it sinks
        bar = max((p.score for p in also), default=-np.inf)
        down = [p.score < bar for p in ranked]
    picks = tuple(p for p, sinks in zip(ranked, down, strict=True) if not sinks)
    return picks, tuple(p for p, sinks in zip(ranked, down, strict=True) if sinks)


def _also(
    model: ReaderModel,
    window: sparse.csr_matrix,
    z: np.ndarray,
    skip: np.ndarray,
    cap: int,
    tuning: Tuning,
) -> tuple[Pick, ...]:
    """Missed papers far above the day's average, each with the liked example it is closest to.

    The best ``cap * 2`` candidates not in ``skip`` (a mask over the window's rows) are tried
    in order until ``cap`` share a term with a liked example; the nearest liked example is
    only looked for in the candidates tried."""
    if cap <= 0 or model.liked_rows.size == 0:
        return ()
    above = np.flatnonzero((z >= tuning.also_above) & ~skip)
    chosen = above[np.argsort(-z[above], kind="stable")][: cap * 2].tolist()
    picks: list[Pick] = []
    dense = np.zeros(window.shape[1])  # scratch: one window row at a time
    for index in chosen:
        closeness = _closeness(window, index, model.examples, dense)[model.liked_rows]
        nearest = int(np.argmax(closeness))
        if closeness[nearest] > 0:  # shares at least one term with a liked example
            learned = tuning.learned * float(z[index])
            picks.append(Pick(index, learned, learned, nearest))
            if len(picks) == cap:
                break
    return tuple(picks)


def _closeness(
    window: sparse.csr_matrix, row: int, examples: sparse.csr_matrix, dense: np.ndarray
) -> np.ndarray:
    """One window row's dot product with every example.

    Through the dense scratch vector ``dense`` (left all zero): slicing the window and
    multiplying two sparse matrices costs a millisecond of scipy's bookkeeping for ten
    rows, this a tenth of it."""
    start, end = window.indptr[row], window.indptr[row + 1]
    columns = window.indices[start:end]
    dense[columns] = window.data[start:end]
    found = np.asarray(examples.dot(dense))
    dense[columns] = 0.0
    return found
