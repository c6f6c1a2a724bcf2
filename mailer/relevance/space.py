"""A TF-IDF space fitted over the paper store: papers and examples as unit vectors.

Words are folded and stemmed as the keyword matcher does (``representations`` and
``representation`` are one term), English stop words and bare numbers are dropped. Fitting
runs on this CPU with scikit-learn and downloads nothing. Each term keeps the word it most
often came from, so what the model learned can be said in words rather than stems.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from mailer.matching.text import WORD, fold, stem
from mailer.models import Paper

MAX_FEATURES = 50_000
# A term seen in a single paper says nothing about what two papers share; in a tiny store
# (a test, a first day) every term is kept.
MIN_DF = 2
SMALL_STORE = 50
_STOP = frozenset(ENGLISH_STOP_WORDS)


def paper_text(title: str, abstract: str) -> str:
    """The text a paper or seeded entry is represented by."""
    return f"{title}. {abstract}" if abstract else title


class _Analyzer:
    """Folded, stemmed content words; while fitting, counts which word each stem came from."""

    def __init__(self) -> None:
        self.surface: dict[str, Counter[str]] | None = {}

    def __call__(self, text: str) -> list[str]:
        # Folded and stemmed as the matcher does, without its offsets and markup handling:
        # a quarter of the cost, and a stray "mathcal" weighs nothing in a centroid.
        stems = []
        surface = self.surface
        for word in WORD.findall(fold(text)):
            if len(word) < 2 or word.isdigit() or word in _STOP:
                continue
            term = stem(word)
            stems.append(term)
            if surface is not None:
                surface.setdefault(term, Counter())[word] += 1
        return stems


class TextSpace:
    """A vectorizer fitted over the store's texts; ``vectors`` maps any text into it."""

    def __init__(self, texts: Sequence[str]) -> None:
        analyzer = _Analyzer()
        vectorizer = TfidfVectorizer(
            analyzer=analyzer,
            sublinear_tf=True,
            min_df=MIN_DF if len(texts) >= SMALL_STORE else 1,
            max_features=MAX_FEATURES,
            dtype=np.float64,
        )
        self._vectorizer: TfidfVectorizer | None = vectorizer
        try:
            matrix = vectorizer.fit_transform(list(texts))
        except ValueError:  # no usable word at all (an empty or numbers-only store)
            matrix = sparse.csr_matrix((len(texts), 0))
            self._vectorizer = None
        surface = analyzer.surface or {}
        analyzer.surface = None  # stop counting: later calls only transform
        self.terms: tuple[str, ...] = (
            tuple(self._vectorizer.get_feature_names_out()) if self._vectorizer else ()
        )
        self.words = tuple(_most_common(surface.get(term)) or term for term in self.terms)
        # The average paper: subtracted from a reader's query so that what every paper
        # shares (method, model, results) does not count as a taste.
        self.background = np.asarray(matrix.mean(axis=0)).ravel() if matrix.shape[0] else None

    @property
    def size(self) -> int:
        """How many terms the space has (0: it cannot represent anything)."""
        return len(self.terms)

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Unit-length TF-IDF rows for ``texts`` (all-zero rows for texts with no known term)."""
        if self._vectorizer is None or not texts:
            return sparse.csr_matrix((len(texts), self.size))
        return sparse.csr_matrix(self._vectorizer.transform(list(texts)))

    def stems_vector(self, stems: Sequence[str]) -> np.ndarray:
        """A unit vector of already-stemmed words (a keyword profile's), each weighted by its
        idf; words the space does not know are left out."""
        found = np.zeros(self.size)
        if self._vectorizer is None:
            return found
        vocabulary, idf = self._vectorizer.vocabulary_, self._vectorizer.idf_
        for term in stems:
            column = vocabulary.get(term)
            if column is not None:
                found[column] = idf[column]
        norm = float(np.linalg.norm(found))
        return found / norm if norm else found

    def paper_vectors(self, papers: Sequence[Paper]) -> sparse.csr_matrix:
        """``vectors`` of papers' titles and abstracts."""
        return self.vectors([paper_text(p.title, p.abstract) for p in papers])


def _most_common(counts: Counter[str] | None) -> str | None:
    if not counts:
        return None
    return min(counts.items(), key=lambda item: (-item[1], item[0]))[0]
