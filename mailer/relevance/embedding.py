"""A sentence-embedding space: papers and examples as a locally installed model's unit vectors.

The optional backend of the learned ranking (``MAILER_RELEVANCE_MODEL``, the ``embeddings``
extra): a sentence-transformers model directory the operator installed (all-MiniLM-L6-v2 saved
with ``model.save(path)``, say). Loading it is I/O and lives in ``mailer.pipeline.learning``
(local files only, the Hugging Face hub offline); this module takes the loaded model.

``EmbeddingSpace`` offers what the model and the ranking use of ``TextSpace`` (vectors of texts,
the average paper, a size), as CSR rows so that Rocchio, the ranking, "You may also like" and
the explanations by liked paper work unchanged. Its dimensions have no words: what a reader's
model learned is still said in words by the TF-IDF space over the same examples. Each distinct
text is encoded once per process, in batches (``Encoder``), never once per reader.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from mailer.models import Paper
from mailer.relevance.space import Representation

SETTING = "MAILER_RELEVANCE_MODEL"
# A sentence encoder reads the title once, then the abstract: repeating the title is how the
# TF-IDF space weighs it, and would only eat the model's input length here.
EMBEDDING_REPRESENTATION = Representation(title_repeat=1, bigrams=False)
BATCH = 64  # texts per forward pass: larger batches gain nothing on a 2-core CPU
CACHE = 50_000  # texts kept per process (50,000 x 384 float32: 77 MB for MiniLM)


class Encoder:
    """A sentence-transformers model on the CPU: texts to unit vectors, each text once."""

    def __init__(self, model: Any, path: Path) -> None:
        self.path = path
        self._model = model
        # Renamed in sentence-transformers 6 (the old name warns); older releases have only it.
        size = getattr(model, "get_embedding_dimension", None)
        self.size = int((size or model.get_sentence_embedding_dimension)() or 0)
        self._lock = threading.Lock()  # one forward pass at a time; the cache is shared
        self._known: dict[str, np.ndarray] = {}
        self.encoded = 0  # texts encoded so far (each distinct text once while cached)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length rows for ``texts`` (all-zero rows for texts the model has no token of)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._known))
            if len(self._known) + len(missing) > CACHE:
                self._known = {}
                missing = list(dict.fromkeys(texts))
            if missing:
                self._known.update(zip(missing, self._forward(missing), strict=True))
                self.encoded += len(missing)
            rows = [self._known[t] for t in texts]
        return np.vstack(rows) if rows else np.zeros((0, self.size), dtype=np.float32)

    def forget(self) -> None:
        """Drop every kept vector (the next ``encode`` runs the model again)."""
        with self._lock:
            self._known = {}

    def _forward(self, texts: list[str]) -> np.ndarray:
        found = self._model.encode(
            texts,
            batch_size=BATCH,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(found, dtype=np.float32)


class EmbeddingSpace:
    """Texts as an encoder's unit vectors; the average paper is that of ``texts``."""

    def __init__(
        self,
        encoder: Encoder,
        texts: Sequence[str],
        representation: Representation = EMBEDDING_REPRESENTATION,
    ) -> None:
        self.encoder = encoder
        self.representation = representation
        # Subtracted from a reader's query as in the TF-IDF space: what every paper shares
        # (the field's common direction) does not count as a taste.
        found = encoder.encode(texts)
        self.background: np.ndarray | None = (
            found.mean(axis=0, dtype=np.float64) if len(texts) else None
        )

    @property
    def size(self) -> int:
        """How many dimensions the model's vectors have."""
        return self.encoder.size

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Unit-length rows for ``texts``, as CSR so the ranking takes them as TF-IDF rows."""
        if not texts:
            return sparse.csr_matrix((0, self.size))
        return sparse.csr_matrix(self.encoder.encode(texts).astype(np.float64))

    def paper_vectors(self, papers: Sequence[Paper]) -> sparse.csr_matrix:
        """``vectors`` of papers' titles and abstracts."""
        return self.vectors([self.representation.text(p.title, p.abstract) for p in papers])
