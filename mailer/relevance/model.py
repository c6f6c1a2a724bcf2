"""A reader's model: a query vector in the TF-IDF space, learned from their examples.

Rocchio's relevance feedback, the oldest and cheapest learner that works: the centroid of the
liked examples, minus half the centroid of the disliked ones, minus the average paper. One
vector per reader, so scoring a day's papers is one sparse product, and what it learned reads
as its largest weights. (A per-reader logistic regression was tried on the labelled personas:
no better, and a hundred times the cost.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from mailer.relevance.examples import Example, Vote
from mailer.relevance.space import Space, TextSpace
from mailer.relevance.tuning import DEFAULT, Tuning

MAX_EXAMPLES = 200  # the newest this many; a whole seeded library would only blur the centroid


@dataclass(frozen=True)
class ReaderModel:
    """What one reader's votes amount to in one space."""

    query: np.ndarray  # dense, one weight per term
    # Every example's vector and which of them are liked, to name the liked example a paper
    # resembles (kept whole: taking the liked rows out costs more than the few products).
    examples: sparse.csr_matrix
    liked_rows: np.ndarray
    liked_titles: tuple[str, ...]

    @property
    def liked(self) -> sparse.csr_matrix:
        """The liked examples' vectors, in the order of ``liked_titles``."""
        return self.examples[self.liked_rows]

    def top_terms(self, space: TextSpace, count: int = 10) -> tuple[list[str], list[str]]:
        """The words that count most for and against a paper, strongest first."""
        order = np.argsort(-self.query, kind="stable")
        up = [space.words[i] for i in order[:count] if self.query[i] > 0]
        down = [space.words[i] for i in order[::-1][:count] if self.query[i] < 0]
        return up, down


def learn(
    space: Space,
    examples: Sequence[Example],
    vectors: sparse.csr_matrix | None = None,
    *,
    tuning: Tuning = DEFAULT,
) -> ReaderModel | None:
    """The reader's model, or None when there is nothing to learn from.

    ``vectors`` are the examples' rows in ``space`` when the caller has them already.
    """
    if not examples or space.size == 0 or space.background is None:
        return None
    rows = vectors if vectors is not None else space.vectors([e.text for e in examples])
    votes = [e.vote for e in examples]
    return learn_rows(space, votes, [e.title for e in examples], rows, tuning=tuning)


def learn_rows(
    space: Space,
    votes: Sequence[Vote],
    titles: Sequence[str],
    rows: sparse.csr_matrix,
    *,
    tuning: Tuning = DEFAULT,
    offset: np.ndarray | None = None,
) -> ReaderModel | None:
    """``learn`` from the examples' votes, titles and rows in ``space``: what the planner has
    when the rows come from its cache, without the texts it would only need on a miss.

    ``offset`` is ``background_offset(space, tuning)`` when the caller keeps it for many
    readers (the same floats; a pass over every term saved per reader)."""
    if not votes or space.size == 0 or space.background is None:
        return None
    liked = [i for i, vote in enumerate(votes) if vote is Vote.MORE]
    disliked = len(votes) - len(liked)
    # Each row's weight in the query: the centroids' means, signed; one weighted sum.
    weights = np.array(
        [1.0 / len(liked) if vote is Vote.MORE else -tuning.disliked / disliked for vote in votes]
    )
    query = _weighted_sum(rows, weights)
    if liked:  # the background only sharpens a taste; alone it would favour odd papers
        query -= background_offset(space, tuning) if offset is None else offset
    return ReaderModel(
        query, rows, np.asarray(liked, dtype=np.int64), tuple(titles[i] for i in liked)
    )


def background_offset(space: Space, tuning: Tuning = DEFAULT) -> np.ndarray:
    """What a reader's query subtracts for the average paper (every reader of ``space``)."""
    assert space.background is not None
    return tuning.background * space.background


def _weighted_sum(rows: sparse.csr_matrix, weights: np.ndarray) -> np.ndarray:
    """``rows.T.dot(weights)`` without scipy's transpose and checks (a tenth of the time).

    The same products added in the same order (row by row, as scipy's column-major product
    does), so the same floats, bit for bit."""
    each = np.repeat(weights, np.diff(rows.indptr))
    return np.bincount(rows.indices, weights=rows.data * each, minlength=rows.shape[1])
