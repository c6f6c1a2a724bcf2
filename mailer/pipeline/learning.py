"""The learned ranking's glue to the store: the store's text space, examples loaded in bulk.

The planner loads a chunk's examples in one query (``Learner.load``) and asks for a voter's
digest (``Learner.digest``); subscribers without examples never reach the model, so their
digests are the keyword digests, byte for byte. The space is fitted over the newest papers
of the store once per process and store version (a fetch adds papers, a new space follows);
vectors of stored papers are kept per space, since many readers vote on the same papers.
With ``MAILER_RELEVANCE_MODEL`` set, the ranking's space is a locally installed sentence-embedding
model's instead (``store_spaces``); what a reader's model learned is said in words by the TF-IDF
space either way (``reader_taste``), since an embedding's dimensions have none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence, Set
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from scipy import sparse
from sqlalchemy.orm import Session

from mailer.db import feedback as feedback_repo
from mailer.db import papers as paper_repo
from mailer.db.feedback import StoredExample
from mailer.db.session import SessionFactory
from mailer.matching import PaperIndex, Profile
from mailer.pipeline.encoder import load_encoder
from mailer.relevance import ReaderModel, TextSpace, Vote
from mailer.relevance.digest import LearnedDigest, learned_digest
from mailer.relevance.embedding import EMBEDDING_REPRESENTATION, EmbeddingSpace
from mailer.relevance.model import MAX_EXAMPLES, background_offset, learn_rows
from mailer.relevance.space import DEFAULT_REPRESENTATION, Representation, Space
from mailer.relevance.tuning import DEFAULT, Tuning

STORE_SAMPLE = 5000  # the newest papers the space is fitted over: a few seconds of CPU
# The newest papers whose average is an embedding space's background: the mean of 1,000 unit
# vectors is already stable, and each is a forward pass of the model (once per process).
EMBEDDING_SAMPLE = 1000
VECTOR_CACHE = 50_000  # vectors kept per space (papers and seeded entries)


class StoreSpace:
    """The store's space (TF-IDF unless ``build`` makes another), rebuilt from its newest papers
    when the store changes (thread-safe)."""

    def __init__(
        self,
        sample: int = STORE_SAMPLE,
        representation: Representation = DEFAULT_REPRESENTATION,
        build: Callable[[Sequence[str], Representation], Space] = TextSpace,
        cache: int = VECTOR_CACHE,
    ) -> None:
        self.build = build
        self.cache = cache
        self.sample = sample
        self.representation = representation
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._space: Space | None = None
        # Rows as (column indices, values): stacking them is cheap, unlike one-row matrices.
        self._vectors: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        # The papers the space was fitted over, by key, and their rows (``TextSpace.fitted``):
        # after a fetch the window's papers and the voted ones are read from here, not
        # vectorised again (the same floats).
        self._fitted: tuple[dict[Hashable, int], sparse.csr_matrix] | None = None

    def get(self, session: Session) -> Space:
        """The space for the store as it is now."""
        version = paper_repo.store_version(session)
        with self._lock:
            if version != self._version or self._space is None:
                said = self.representation.text
                newest = paper_repo.newest_texts(session, self.sample)
                self._space = self.build([said(t, a) for _, t, a in newest], self.representation)
                self._version = version
                self._vectors = {}
                fitted = self._space.fitted if isinstance(self._space, TextSpace) else None
                self._fitted = (
                    ({("paper", id_): n for n, (id_, _, _) in enumerate(newest)}, fitted)
                    if fitted is not None and self.cache
                    else None
                )
            return self._space

    def vectors(
        self, space: Space, keys: Sequence[Hashable], text_of: Callable[[int], str]
    ) -> sparse.csr_matrix:
        """Rows for ``keys``, each kept under its key while ``space`` is current; ``text_of(i)``
        is the ``i``-th key's text, made only when its row is not kept (most are)."""
        with self._lock:
            current = space is self._space
            cache = self._vectors if current else {}
            found = [cache.get(key) for key in keys]
            fitted = self._fitted if current else None
        missing = [i for i, row in enumerate(found) if row is None]
        if missing and fitted is not None:
            at, matrix = fitted
            for i in missing:
                n = at.get(keys[i])
                if n is not None:  # a view: the fitted matrix is kept with the space anyway
                    start, end = matrix.indptr[n], matrix.indptr[n + 1]
                    found[i] = (matrix.indices[start:end], matrix.data[start:end])
        unmade = [i for i in missing if found[i] is None]
        if unmade:
            fresh = space.vectors([text_of(i) for i in unmade])
            for n, i in enumerate(unmade):
                start, end = fresh.indptr[n], fresh.indptr[n + 1]
                found[i] = (fresh.indices[start:end].copy(), fresh.data[start:end].copy())
        if missing:
            with self._lock:
                if space is self._space and self.cache:
                    if len(self._vectors) + len(missing) > self.cache:
                        self._vectors = {}
                    self._vectors.update((keys[i], row) for i in missing if (row := found[i]))
        return _stack([row for row in found if row is not None], space.size)


def _stack(rows: Sequence[tuple[np.ndarray, np.ndarray]], width: int) -> sparse.csr_matrix:
    """A CSR matrix from rows kept as (column indices, values): scipy's vstack of one-row
    matrices costs a millisecond for twenty rows, this a few microseconds."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(indices) for indices, _ in rows], out=indptr[1:])
    if not rows:
        return sparse.csr_matrix((0, width))
    indices = np.concatenate([indices for indices, _ in rows])
    data = np.concatenate([values for _, values in rows])
    return sparse.csr_matrix((data, indices, indptr), shape=(len(rows), width))


SPACES = StoreSpace()  # one per process: the web's taste summaries share it with the planner


@lru_cache(maxsize=2)
def store_spaces(model: Path | None) -> StoreSpace:
    """The spaces the learned ranking uses: TF-IDF (``SPACES``) without a model, else the
    model's, loaded now and once per process (ConfigError when it cannot be)."""
    if model is None:
        return SPACES
    encoder = load_encoder(model)
    # No row cache of its own: the encoder keeps each text's vector already (float32), and a
    # dense row kept here as sparse indices and float64 values would cost 4.6 KB more.
    build = partial(EmbeddingSpace, encoder)
    return StoreSpace(EMBEDDING_SAMPLE, EMBEDDING_REPRESENTATION, build, cache=0)


def _usable(stored: Sequence[StoredExample]) -> list[StoredExample]:
    """The examples a model learns from: those voted 1 ("more") or -1 ("less")."""
    return [s for s in stored if s.vote in (1, -1)]


_VOTES = {int(vote): vote for vote in Vote}  # a lookup, not Vote(): a third of the time


def _model(
    spaces: StoreSpace,
    space: Space,
    stored: Sequence[StoredExample],
    tuning: Tuning,
    offset: np.ndarray | None = None,
) -> ReaderModel | None:
    """The reader's model from the rows ``spaces`` keeps; a text is made only for a row it
    does not keep (after a fetch), not for every example of every voter."""
    usable = _usable(stored)
    said = space.representation.text

    def text_of(i: int) -> str:
        return said(usable[i].title, usable[i].abstract)

    rows = spaces.vectors(space, [_key(s) for s in usable], text_of)
    votes = [_VOTES[s.vote] for s in usable]
    titles = [s.title for s in usable]
    return learn_rows(space, votes, titles, rows, tuning=tuning, offset=offset)


def _key(stored: StoredExample) -> Hashable:
    """A paper's vector is the paper's; a seeded entry's changes when it is seeded again."""
    if stored.paper_id is not None and stored.origin != "seed":
        return ("paper", stored.paper_id)
    return ("example", stored.id, stored.at)


class Learner:
    """One planning run's learned ranking: examples per chunk, window vectors per window.

    One Learner serves one run (the planner is built per run): it asks once which subscribers
    have examples at all, so a vote recorded during the run counts from the next run.
    """

    def __init__(self, spaces: StoreSpace = SPACES, tuning: Tuning = DEFAULT) -> None:
        self._spaces = spaces
        self._tuning = tuning
        self._space: Space | None = None
        self._offset: np.ndarray | None = None  # the space's background_offset, once a run
        self._stored: dict[int, list[StoredExample]] = {}
        self._voters: frozenset[int] | None = None  # who has examples, read once a run
        # By index identity; the index is held too, so its id is not reused during the run.
        self._windows: dict[int, tuple[PaperIndex, sparse.csr_matrix]] = {}

    def load(self, session: Session, subscriber_ids: Sequence[int]) -> None:
        """Read the examples of a chunk of subscribers: one query for the chunk's voters, none
        when it has none (the non-voters' digests cost what keyword digests cost)."""
        if self._voters is None:
            self._voters = feedback_repo.subscribers_with_examples(session)
        voters = [i for i in subscriber_ids if i in self._voters]
        self._stored = (
            feedback_repo.examples_of(session, voters, newest=MAX_EXAMPLES) if voters else {}
        )

    def has_examples(self, subscriber_id: int) -> bool:
        """True when this subscriber of the loaded chunk has voted or seeded."""
        return bool(self._stored.get(subscriber_id))

    def digest(
        self,
        session: Session,
        subscriber_id: int,
        index: PaperIndex,
        profile: Profile,
        *,
        exclude: Set[int],
        limit: int,
    ) -> LearnedDigest | None:
        """The voter's digest of ``index``'s papers; None when they have no examples."""
        stored = self._stored.get(subscriber_id)
        if not stored:
            return None
        space = self._space_for(session)
        model = _model(self._spaces, space, stored, self._tuning, self._offset)
        if model is None:
            return None
        voted = frozenset(s.paper_id for s in stored if s.paper_id is not None)
        window = self._window(space, index)
        return learned_digest(
            index,
            window,
            profile,
            model,
            exclude=exclude,
            voted=voted,
            limit=limit,
            tuning=self._tuning,
        )

    def _space_for(self, session: Session) -> Space:
        if self._space is None:  # one space for the whole run, even if a fetch lands meanwhile
            self._space = self._spaces.get(session)
            if self._space.size and self._space.background is not None:
                self._offset = background_offset(self._space, self._tuning)
        return self._space

    def _window(self, space: Space, index: PaperIndex) -> sparse.csr_matrix:
        held = self._windows.get(id(index))
        if held is not None and held[0] is index:
            return held[1]
        papers = index.papers
        keys = [("paper", p.id) if p.id is not None else ("key", p.key) for p in papers]
        said = space.representation.text
        found = self._spaces.vectors(
            space, keys, lambda i: said(papers[i].title, papers[i].abstract)
        )
        self._windows[id(index)] = (index, found)
        return found


@dataclass(frozen=True, slots=True)
class Taste:
    """What a reader's model has learned, in words."""

    more: tuple[str, ...]
    less: tuple[str, ...]


def reader_taste(
    sessions: SessionFactory, subscriber_id: int, spaces: StoreSpace = SPACES
) -> Taste:
    """The words that count most for and against a paper in this reader's digests, read in
    the TF-IDF space ``spaces`` holds (an embedding space has no words to say)."""
    with sessions() as session:
        stored = feedback_repo.examples_of(session, [subscriber_id], newest=MAX_EXAMPLES)
        mine = stored.get(subscriber_id, [])
        if not mine:
            return Taste((), ())
        space = spaces.get(session)
    if not isinstance(space, TextSpace):
        return Taste((), ())
    model = _model(spaces, space, mine, DEFAULT)
    if model is None:
        return Taste((), ())
    more, less = model.top_terms(space)
    return Taste(tuple(more), tuple(less))
