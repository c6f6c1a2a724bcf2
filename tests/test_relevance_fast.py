"""The learned ranking's fast paths against scipy's plain products: the same floats, bit for bit.

A voter's digest must not move when it gets cheaper: the query is summed without scipy's
transpose, and the "You may also like" candidates' nearest liked example is looked for one
candidate at a time until the section is full. Each is compared here with the straightforward
scipy expression it replaced, on random matrices and on the relevance tests' small store; so are
the planner's later trims (scores standardised without numpy's wrappers, blocked rows unpacked
from the bits, a model learned from kept rows, a learned match made by Match's constructor).
"""

from __future__ import annotations

from dataclasses import fields, replace

import numpy as np
import pytest
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from mailer.matching.postings import iter_bits
from mailer.models import Match, Span
from mailer.relevance import Vote, learn
from mailer.relevance.digest import _set_bits, _with_learned
from mailer.relevance.model import ReaderModel, _weighted_sum, background_offset, learn_rows
from mailer.relevance.ranking import Pick, _also, also_room, personalise, standardised
from mailer.relevance.space import (
    DEFAULT_REPRESENTATION,
    MAX_FEATURES,
    MIN_DF,
    SMALL_STORE,
    TextSpace,
    _Analyzer,
    paper_text,
)
from mailer.relevance.tuning import Tuning
from tests import test_relevance as small


def random_rows(seed: int, count: int, width: int = 300) -> sparse.csr_matrix:
    """Unit rows like TF-IDF vectors, some of them empty (a text with no known term)."""
    rng = np.random.default_rng(seed)
    dense = rng.random((count, width)) * (rng.random((count, width)) < 0.08)
    dense[rng.random(count) < 0.15] = 0.0
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return sparse.csr_matrix(dense / np.where(norms > 0, norms, 1.0))


@pytest.mark.parametrize("seed", range(20))
def test_the_query_sum_is_scipys_transposed_product_bit_for_bit(seed: int) -> None:
    rows = random_rows(seed, 1 + seed % 25)
    weights = np.random.default_rng(seed).normal(size=rows.shape[0]) / 7
    expected = np.asarray(rows.T.dot(weights)).ravel()
    assert np.array_equal(_weighted_sum(rows, weights), expected)


@pytest.mark.parametrize("seed", range(20))
def test_standardised_scores_equal_numpys_mean_and_std_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    window = random_rows(3000 + seed, 1 + 97 * seed)
    query = rng.normal(size=window.shape[1]) * 10.0 ** rng.integers(-3, 4)
    model = ReaderModel(query, random_rows(seed, 2), np.array([0], dtype=np.int64), ("a",))
    raw = np.asarray(window.dot(query)).ravel()
    spread = float(raw.std())
    expected = (raw - float(raw.mean())) / spread if spread > 0 else np.zeros_like(raw)
    assert np.array_equal(standardised(model, window), expected)


@pytest.mark.parametrize("seed", range(20))
def test_the_blocked_rows_are_the_set_bits_iter_bits_yields(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(0, 2000)) if seed else 0
    chosen = rng.random(count) < rng.random()
    bits = sum(1 << int(i) for i in np.flatnonzero(chosen))
    found = _set_bits(bits, count)
    assert found.tolist() == list(iter_bits(bits)) == np.flatnonzero(chosen).tolist()


def reference_also(
    model: ReaderModel, window: sparse.csr_matrix, z: np.ndarray, skip: set[int], cap: int,
    tuning: Tuning,
) -> tuple[Pick, ...]:  # fmt: skip
    """The "also like" papers as first written: every candidate against the liked rows at once."""
    liked = model.examples[model.liked_rows]
    if cap <= 0 or liked.shape[0] == 0:
        return ()
    above = np.flatnonzero(z >= tuning.also_above)
    order = above[np.argsort(-z[above], kind="stable")].tolist()
    chosen = [i for i in order if i not in skip][: cap * 2]
    if not chosen:
        return ()
    closeness = np.asarray(liked.dot(window[chosen].T.toarray()).T)
    picks = []
    for row, index in enumerate(chosen):
        nearest = int(np.argmax(closeness[row]))
        if closeness[row, nearest] > 0:
            learned = tuning.learned * float(z[index])
            picks.append(Pick(index, learned, learned, nearest))
    return tuple(picks[:cap])


@pytest.mark.parametrize("seed", range(30))
def test_also_like_equals_every_candidate_compared_at_once(seed: int) -> None:
    rng = np.random.default_rng(seed)
    window = random_rows(1000 + seed, 60)
    examples = random_rows(2000 + seed, 1 + seed % 12)
    liked = np.flatnonzero(rng.random(examples.shape[0]) < 0.6)
    query = rng.normal(size=window.shape[1])
    titles = tuple(f"liked {i}" for i in liked)
    model = ReaderModel(query, examples, liked.astype(np.int64), titles)
    z = standardised(model, window)
    skip = {int(i) for i in rng.choice(60, size=seed % 20, replace=False)}
    mask = np.zeros(60, dtype=bool)
    mask[list(skip)] = True
    for tuning in (Tuning(), Tuning(also_above=0.0), Tuning(also_above=-5.0, learned=0.5)):
        for cap in (0, 1, 5, 40):
            assert _also(model, window, z, mask, cap, tuning) == reference_also(
                model, window, z, skip, cap, tuning
            )


def test_the_model_and_the_ranking_equal_scipys_products_on_the_small_store() -> None:
    store, index, space = small.setup()
    window = space.paper_vectors(index.papers)
    votes = [Vote.MORE, Vote.LESS, Vote.MORE, Vote.MORE, Vote.LESS]
    for start in range(0, 30, 3):
        chosen = [small.example(p, v) for p, v in zip(store[start::7], votes, strict=False)]
        model = learn(space, chosen)
        assert model is not None
        rows = space.vectors([e.text for e in chosen])
        weights = np.array([1.0 if e.vote is Vote.MORE else -1.0 for e in chosen])
        weights[weights > 0] /= max(int((weights > 0).sum()), 1)
        weights[weights < 0] *= 0.5 / max(int((weights < 0).sum()), 1)
        expected = np.asarray(rows.T.dot(weights)).ravel()
        if (weights > 0).any():
            expected -= space.background
        assert np.array_equal(model.query, expected)
        liked = [i for i, e in enumerate(chosen) if e.vote is Vote.MORE]
        assert (model.liked != rows[liked]).nnz == 0
        keyword = list(range(0, 40, 2))
        found = personalise(model, window, keyword, [1.0] * 20, blocked=[1, 3], also_cap=3)
        z = standardised(model, window)
        room = also_room(3, 25, len(keyword))  # 20 matches of 25 places: 5 free
        also = reference_also(model, window, z, set(keyword) | {1, 3}, room, Tuning())
        assert found.also == also


def test_learning_from_kept_rows_and_offset_equals_learning_from_the_texts() -> None:
    store, _, space = small.setup()
    votes = [Vote.MORE, Vote.LESS, Vote.MORE, Vote.LESS, Vote.LESS]
    offset = background_offset(space)
    for start in range(0, 30, 3):
        chosen = [small.example(p, v) for p, v in zip(store[start::7], votes, strict=False)]
        expected = learn(space, chosen)
        rows = space.vectors([e.text for e in chosen])
        found = learn_rows(space, [e.vote for e in chosen], [e.title for e in chosen], rows,
                           offset=offset)  # fmt: skip
        assert expected is not None and found is not None
        assert np.array_equal(found.query, expected.query)
        assert np.array_equal(found.liked_rows, expected.liked_rows)
        assert found.liked_titles == expected.liked_titles


def test_a_learned_match_is_dataclasses_replace_of_the_keyword_match() -> None:
    store, _, _ = small.setup()
    # Every field set to a value that is not its default: a field added to Match later and
    # not copied by the constructor call fails here.
    spans = (Span("title", 0, 4),)
    match = Match(store[0], 2.5, ("learning",), ("learn",), spans, learned=0.25, resembles="x")
    assert all(getattr(match, f.name) != f.default for f in fields(Match))
    assert _with_learned(match, -1.5) == replace(match, learned=-1.5)


def identical(a: sparse.csr_matrix, b: sparse.csr_matrix) -> bool:
    """The same rows, terms in the same order, the same floats bit for bit."""
    return (
        a.shape == b.shape
        and np.array_equal(a.indptr, b.indptr)
        and np.array_equal(a.indices, b.indices)
        and a.data.tobytes() == b.data.tobytes()
    )


def library_space(texts: list[str]) -> tuple[TfidfVectorizer, sparse.csr_matrix]:
    """What TextSpace fitted before its vectorizer was split in two: the reference."""
    vectorizer = TfidfVectorizer(
        analyzer=_Analyzer(DEFAULT_REPRESENTATION.bigrams),
        sublinear_tf=True,
        min_df=MIN_DF if len(texts) >= SMALL_STORE else 1,
        max_features=MAX_FEATURES,
        dtype=np.float64,
    )
    return vectorizer, sparse.csr_matrix(vectorizer.fit_transform(texts))


@pytest.mark.parametrize("repeat", [1, 2])
def test_the_split_vectorizer_is_tfidfvectorizer_and_its_fitted_rows_are_its_transform(
    repeat: int,
) -> None:
    # Twice the small store with the copies reworded, so that min_df drops terms too.
    store = small.papers() * repeat
    texts = [paper_text(p.title + (f" copy {n}" if n >= 40 else ""), p.abstract)
             for n, p in enumerate(store)]  # fmt: skip
    space = TextSpace(texts)
    vectorizer, fit = library_space(texts)
    assert space.terms == tuple(vectorizer.get_feature_names_out())
    assert space.background is not None
    assert space.background.tobytes() == np.asarray(fit.mean(axis=0)).ravel().tobytes()
    transformed = sparse.csr_matrix(vectorizer.transform(texts))
    assert identical(space.vectors(texts), transformed)
    # The fit's own rows differ from transform's in term order, and in the last bit once
    # sorted; ``fitted`` must be transform's.
    assert not identical(fit, transformed)
    assert identical(space.fitted, transformed)
