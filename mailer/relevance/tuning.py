"""The learned ranking's few knobs, in one place, so the relevance bench can tune them.

Every knob is chosen by leave-one-persona-out on the relevance bench's six development
personas (``bench/relevance_tune.py``): for each persona the grid cell best on the other five
is scored on it, and the defaults are the cell best on all six only where the held-out figures
agree with it. ``bench/results/relevance_tune.json`` holds the figures.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tuning:
    """How votes become a ranking (Rocchio's weights, then the blend with the keywords)."""

    # Rocchio: query = profile x the profile's own words + the liked centroid
    # - disliked x the disliked centroid - background x the average paper.
    profile: float = 0.0
    disliked: float = 0.5
    background: float = 1.0
    # The blend: a keyword match ranks by keyword score + learned x its standardised score.
    learned: float = 1.0
    sink_below: float = 0.5  # standardised score under which a keyword match sinks
    also_above: float = 1.5  # standardised score a missed paper needs for "You may also like"


DEFAULT = Tuning()
