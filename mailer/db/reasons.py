"""Why each listed paper matched, recomputed from the paper and the profile planned with.

A digest stores its papers' ids and scores (``mailer.db.listing``) and a reference to the
profile text it was planned with; the interests, matched words and highlight spans are what
the matching engine gives for that paper and that text, so they are recomputed here rather
than stored per paper. The profile text is the one of planning time, not the subscriber's
current one, so a retry after a profile edit renders the same email byte for byte.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from mailer.db.listing import Listed
from mailer.errors import ProfileError
from mailer.matching import PaperIndex, Profile, parse_profile
from mailer.models import Match, Paper


@functools.lru_cache(maxsize=4096)
def planned_profile(text: str) -> Profile | None:
    """A stored profile text parsed (None if it no longer parses: nothing is explained)."""
    try:
        return parse_profile(text)
    except ProfileError:
        return None


class Reexplainer:
    """Explains listed papers against their digest's profile, over one index of papers.

    The index is kept across calls (a sending run loads thousands of digests listing the same
    few hundred papers) and rebuilt only when a paper it has not seen, or a newer version of
    one (a refetch), comes along; past ``limit`` papers it starts afresh. Building one costs
    about as much as explaining a few hundred digests, so a batch is ``prepare``d first with
    all the papers it lists: one build per batch at most, not one per digest.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._index: PaperIndex | None = None
        self._positions: dict[int, int] = {}

    def holds(self, papers: Iterable[Paper]) -> bool:
        """Whether the index has every one of these papers, as they read now."""
        index = self._index
        return index is not None and all(_held(index, self._positions, p) for p in papers)

    def prepare(self, papers: Iterable[Paper]) -> None:
        """Index these papers now, at most once (before explaining a batch that lists them)."""
        self._index_for(list(papers))

    def matches(
        self, listed: Sequence[Listed], papers: Mapping[int, Paper], profile_text: str | None
    ) -> list[Match]:
        """The digest's Matches in rank order; a listed paper that is gone is left out."""
        present = [item for item in listed if item.paper_id in papers]
        profile = planned_profile(profile_text) if profile_text is not None else None
        keyword = [item for item in present if item.resembles is None]
        explained: dict[int, Match] = {}
        if profile is not None and keyword:
            index, positions = self._index_for([papers[item.paper_id] for item in keyword])
            found = index.explain_all(
                profile, [(item.score, 0, positions[item.paper_id]) for item in keyword]
            )
            explained = {item.paper_id: match for item, match in zip(keyword, found, strict=True)}
        return [
            _match(item, papers[item.paper_id], explained.get(item.paper_id)) for item in present
        ]

    def _index_for(self, wanted: Sequence[Paper]) -> tuple[PaperIndex, dict[int, int]]:
        index, positions = self._index, self._positions
        if index is not None and all(_held(index, positions, paper) for paper in wanted):
            return index, positions
        papers: dict[int, Paper] = {}
        if index is not None and len(positions) + len(wanted) <= self.limit:
            papers = {pid: index.papers[pos] for pid, pos in positions.items()}
        papers.update((_id(paper), paper) for paper in wanted)
        self._index = index = PaperIndex(list(papers.values()))
        self._positions = positions = {pid: pos for pos, pid in enumerate(papers)}
        return index, positions


def _id(paper: Paper) -> int:
    assert paper.id is not None  # papers read from the store always have one
    return paper.id


def _held(index: PaperIndex, positions: Mapping[int, int], paper: Paper) -> bool:
    """Whether the index holds this paper's text as it is now (what matching reads)."""
    position = positions.get(_id(paper))
    if position is None:
        return False
    held = index.papers[position]
    return held is paper or (
        held.title == paper.title
        and held.abstract == paper.abstract
        and held.authors == paper.authors
        and held.categories == paper.categories
    )


def _match(item: Listed, paper: Paper, explained: Match | None) -> Match:
    if explained is None:  # "You may also like", or a profile that no longer parses
        return Match(paper, item.score, (), learned=item.learned, resembles=item.resembles)
    if explained.paper is not paper:  # the index's copy may be older (upvotes, links)
        explained = replace(explained, paper=paper)
    if item.learned is None:
        return explained
    return replace(explained, learned=item.learned)
