"""A tiny sentence-transformers model built in a test: word vectors chosen by the test, mean
pooled, saved to a folder the way an operator saves all-MiniLM-L6-v2 (nothing is downloaded)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Pooling, WordEmbeddings
from sentence_transformers.sentence_transformer.modules.tokenizer import WhitespaceTokenizer


def save_tiny_model(folder: Path, vectors: Mapping[str, Sequence[float]]) -> Path:
    """A model whose text vector is the mean of its known words' ``vectors``, saved in
    ``folder``; words it does not know are ignored (a text of none of them is all zeros)."""
    vocab = sorted(vectors)
    weights = np.array([vectors[word] for word in vocab], dtype=np.float32)
    tokenizer = WhitespaceTokenizer(vocab=vocab, stop_words=set(), do_lower_case=True)
    words = WordEmbeddings(tokenizer=tokenizer, embedding_weights=weights)
    pooling = Pooling(weights.shape[1], pooling_mode="mean")
    SentenceTransformer(modules=[words, pooling], device="cpu").save(str(folder))
    return folder


def topic_vectors(
    topics: Mapping[str, str], same: Mapping[str, str] = {}
) -> dict[str, list[float]]:
    """One axis per topic: every word of a topic (and the topic's name) lies on its axis;
    ``same`` puts a topic's words on another topic's axis (``{"vision": "robot"}``)."""
    names = list(topics)
    found: dict[str, list[float]] = {}
    for topic, words in topics.items():
        axis = names.index(same.get(topic, topic))
        unit = [1.0 if i == axis else 0.0 for i in range(len(names))]
        for word in [topic, *words.split()]:
            found[word] = unit
    return found
