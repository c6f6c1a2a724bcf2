"""A TF-IDF space fitted over the paper store: papers and examples as unit vectors.

Words are folded and stemmed as the keyword matcher does (``representations`` and
``representation`` are one term), English stop words and bare numbers are dropped; pairs of
neighbouring words are terms too ("imitation learning" is not "learning" plus "imitation"),
and the title counts more than the abstract (see ``Representation``). Fitting runs on this CPU
with scikit-learn and downloads nothing. Each term keeps the words it most often came from, so
what the model learned can be said in words rather than stems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import (
    ENGLISH_STOP_WORDS,
    CountVectorizer,
    TfidfTransformer,
)

from mailer.matching.text import WORD, fold, stem
from mailer.models import Paper

MAX_FEATURES = 50_000
# A term seen in a single paper says nothing about what two papers share; in a tiny store
# (a test, a first day) every term is kept.
MIN_DF = 2
SMALL_STORE = 50
_STOP = frozenset(ENGLISH_STOP_WORDS)


@dataclass(frozen=True, slots=True)
class Representation:
    """How a paper becomes text and terms; both knobs were chosen on the relevance bench."""

    # The title is said this many times: a title word tells more about a paper than an
    # abstract word (the keyword matcher weighs title hits three times; 3 and 4 are within
    # one paper of each other on the bench, and leave-one-persona-out chose 4).
    title_repeat: int = 4
    # Neighbouring words (after stop words are dropped) as terms too. Pairs that stop at
    # sentence ends were tried: worse held out (terse readers 0.71 / 0.71 against 0.74 / 0.79).
    bigrams: bool = True

    def text(self, title: str, abstract: str) -> str:
        """The text a paper or seeded entry is represented by."""
        said = ". ".join([title] * max(self.title_repeat, 1))
        return f"{said}. {abstract}" if abstract else said


DEFAULT_REPRESENTATION = Representation()


def paper_text(title: str, abstract: str) -> str:
    """The text a paper or seeded entry is represented by, in the default representation."""
    return DEFAULT_REPRESENTATION.text(title, abstract)


class _Analyzer:
    """Folded, stemmed content words (and pairs of them); while fitting, counts which words
    each term came from."""

    def __init__(self, bigrams: bool) -> None:
        self.bigrams = bigrams
        self.surface: dict[str, Counter[str]] | None = {}

    def __call__(self, text: str) -> list[str]:
        # Folded and stemmed as the matcher does, without its offsets and markup handling:
        # a quarter of the cost, and a stray "mathcal" weighs nothing in a centroid.
        words = [
            word
            for word in WORD.findall(fold(text))
            if len(word) >= 2 and not word.isdigit() and word not in _STOP
        ]
        stems = [stem(word) for word in words]
        terms = stems + _pairs(stems) if self.bigrams else stems
        surface = self.surface
        if surface is not None:
            said = words + _pairs(words) if self.bigrams else words
            for term, word in zip(terms, said, strict=True):
                surface.setdefault(term, Counter())[word] += 1
        return terms


def _pairs(words: list[str]) -> list[str]:
    return [f"{a} {b}" for a, b in pairwise(words)]


class TextSpace:
    """A vectorizer fitted over the store's texts; ``vectors`` maps any text into it."""

    def __init__(
        self, texts: Sequence[str], representation: Representation = DEFAULT_REPRESENTATION
    ) -> None:
        self.representation = representation
        analyzer = _Analyzer(representation.bigrams)
        # TfidfVectorizer's two halves, kept apart so that the fit's counts can be weighed a
        # second time (``fitted``); the same parameters, so the same terms, idf and floats.
        counter = CountVectorizer(
            analyzer=analyzer,
            min_df=MIN_DF if len(texts) >= SMALL_STORE else 1,
            max_features=MAX_FEATURES,
            dtype=np.float64,
        )
        weigher = TfidfTransformer(sublinear_tf=True)
        self._counter: CountVectorizer | None = counter
        self._weigher = weigher
        try:
            counts = sparse.csr_matrix(counter.fit_transform(list(texts)))
        except ValueError:  # no usable word at all (an empty or numbers-only store)
            counts = sparse.csr_matrix((len(texts), 0))
            self._counter = None
        else:
            weigher.fit(counts)
        surface = analyzer.surface or {}
        analyzer.surface = None  # stop counting: later calls only transform
        self.terms: tuple[str, ...] = (
            tuple(self._counter.get_feature_names_out()) if self._counter else ()
        )
        self.words = tuple(_most_common(surface.get(term)) or term for term in self.terms)
        # The average paper: subtracted from a reader's query so that what every paper
        # shares (method, model, results) does not count as a taste. From the fit's rows as
        # they come (their terms unsorted within a row, as TfidfVectorizer.fit_transform gave).
        matrix = self._weigh(counts)
        self.background = np.asarray(matrix.mean(axis=0)).ravel() if matrix.shape[0] else None
        # The fitted texts' rows, equal bit for bit to ``vectors(texts)``: the fit leaves each
        # row's terms out of order, and the L2 norm summed in another order differs in the
        # last bit (1,695 of 2,000 rows), so the counts are sorted and weighed again. A
        # planner takes the store's papers from here after a fetch instead of re-reading them.
        counts.sort_indices()
        self.fitted = self._weigh(counts)

    def _weigh(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        """TF-IDF rows of unit length from a count matrix (left unchanged)."""
        if self._counter is None:
            return sparse.csr_matrix(counts.shape)
        return sparse.csr_matrix(self._weigher.transform(counts, copy=True))

    @property
    def size(self) -> int:
        """How many terms the space has (0: it cannot represent anything)."""
        return len(self.terms)

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Unit-length TF-IDF rows for ``texts`` (all-zero rows for texts with no known term)."""
        if self._counter is None or not texts:
            return sparse.csr_matrix((len(texts), self.size))
        counts = self._counter.transform(list(texts))
        return sparse.csr_matrix(self._weigher.transform(counts, copy=False))

    def paper_vectors(self, papers: Sequence[Paper]) -> sparse.csr_matrix:
        """``vectors`` of papers' titles and abstracts."""
        return self.vectors([self.representation.text(p.title, p.abstract) for p in papers])


class Space(Protocol):
    """What the reader's model and the ranking use of a space: ``TextSpace``, or the
    sentence-embedding backend's ``embedding.EmbeddingSpace``."""

    representation: Representation
    background: np.ndarray | None  # the average paper; None when the space has no paper

    @property
    def size(self) -> int:
        """How many dimensions its vectors have (0: it cannot represent anything)."""

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Unit-length rows for ``texts``."""


def _most_common(counts: Counter[str] | None) -> str | None:
    if not counts:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]
