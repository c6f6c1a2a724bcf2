"""Learning from the reader: a per-subscriber model over the paper store's text (pure).

Votes ("more like this", "less like this") and entries seeded from the reader's own library
are examples; a TF-IDF space fitted over the store turns them into a query vector that
re-ranks the keyword matches and finds a few close papers the keywords missed. Keywords stay
the contract: nothing here ever lifts an excluded paper into a digest.
"""

from mailer.relevance.examples import Example, Vote
from mailer.relevance.model import ReaderModel, learn
from mailer.relevance.ranking import ALSO_CAP, Personalised, Pick, personalise
from mailer.relevance.space import TextSpace, paper_text

__all__ = [
    "ALSO_CAP",
    "Example",
    "Personalised",
    "Pick",
    "ReaderModel",
    "TextSpace",
    "Vote",
    "learn",
    "paper_text",
    "personalise",
]
