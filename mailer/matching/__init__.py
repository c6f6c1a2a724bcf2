"""Keyword-profile matching: parse profiles, index a batch of papers, rank and explain matches."""

from mailer.matching.baseline import baseline_match
from mailer.matching.index import PaperIndex, Ranked
from mailer.matching.parser import MAX_CHARS, MAX_INTERESTS, parse_profile
from mailer.matching.profile import Interest, Profile, Term

__all__ = [
    "MAX_CHARS",
    "MAX_INTERESTS",
    "Interest",
    "PaperIndex",
    "Profile",
    "Ranked",
    "Term",
    "baseline_match",
    "parse_profile",
]
