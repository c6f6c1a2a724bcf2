"""The learned ranking's few knobs, in one place, so the relevance bench can tune them.

``bench/relevance_tune.py`` chooses knobs by leave-one-persona-out on the relevance bench's six
development personas: for each persona, the grid cell best on the other five is scored on it.
The text representation (``space.Representation``) passed: every fold chose the same cell,
and its held-out figures equal its in-sample ones (since the "also like" section fills the
digest, five folds of six: P05's chose the title said three times, and lost a core paper of
its hurried reader, terse R@25 held out 0.863 -> 0.844). So did where the keyword matches the
votes speak against go (``sink_below``): every fold chose ``None``, the "You may also like"
section ranked where its best paper would, over the first version's fixed thresholds (readers'
nDCG@10 held out: careful 0.869 -> 0.879, terse 0.743 -> 0.773; R@25 unchanged). The weights
did not: tuning every knob at once lowered the held-out figures (they fit the five), so they
keep the first version's round values.

Nor did the "also like" threshold alone: ``also_above`` 1.0 gained recall in sample (terse R@25
0.789 -> 0.807, all of it on one persona, whose own fold chose 1.5) and nothing held out, while
the section held at most five papers. A hurried reader's words match only a handful of papers
(9, 5 and 12 of the 25 places for three of the six terse readers), so the cap, not the
threshold, kept close papers out: letting the section fill the places the keyword matches leave
free, up to ``ranking.ALSO_ROOM_CAP`` (``also_fills``), and lowering the threshold to 1.0 was
chosen by every fold, and the held-out figures equal the in-sample ones: terse readers'
nDCG@10 / R@25 0.773 / 0.789 -> 0.782 / 0.863, careful readers' 0.879 / 0.907 -> 0.879 / 0.926
(P@10 unchanged, 0.77 / 0.87). Filling alone at 1.5 gained on one persona only. Filling every
free place (22 suggestions beside 3 matches) scored terse 0.782 / 0.891 (and the thresholds
0.75 and 0.5 the same), but let suggestions swamp the keyword matches; ten keep them beside
the matches. ``bench/results/relevance_tune.json`` holds the figures.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tuning:
    """How votes become a ranking (Rocchio's weights, then the blend with the keywords)."""

    # Rocchio: query = the liked centroid - disliked x the disliked centroid
    # - background x the average paper. (The profile's own words as Rocchio's original
    # query were tried: no better held out, so the keywords stay in the keyword score only.)
    disliked: float = 0.5
    background: float = 1.0
    # The blend: a keyword match ranks by keyword score + learned x its standardised score.
    learned: float = 1.0
    # Where the keyword matches the votes speak against go. None: below the "You may also
    # like" section when its best paper outscores them (one scale for every paper). A number:
    # the first version's rule, below the section when their standardised score is under it
    # (kept so the tuning bench measures both in one run; held out it lost, see the module).
    sink_below: float | None = None
    # Standardised score a missed paper needs for "You may also like" (the first version: 1.5).
    also_above: float = 1.0
    # The section may fill the places the keyword matches leave free in the digest, up to
    # ``ranking.ALSO_ROOM_CAP``, not only ``ranking.ALSO_CAP`` (False: the first version's cap).
    also_fills: bool = True


DEFAULT = Tuning()
