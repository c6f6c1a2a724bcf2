"""The keyword-profile parser (README, "The keyword profile"): text in, a Profile or an error."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from mailer.errors import ProfileError
from mailer.matching.profile import (
    ALL,
    ANY_FIELD,
    AUTHOR,
    CATEGORY,
    TEXT,
    TITLE,
    Interest,
    Profile,
    Term,
)
from mailer.matching.text import analyze, fold, name_tokens

MAX_CHARS = 2000
MAX_INTERESTS = 100
SCOPES = ("author", "cat", "title")

# Phones turn straight quotes into curly ones; treat them alike (same length keeps positions).
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})
_TOKEN = re.compile(r'(-?)(?:([A-Za-z]+):)?(?:"([^"]*)"|([^\s"]*))')
_SEPARATOR = re.compile(r"[,\n]")
_CATEGORY = re.compile(r"[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)?")
# Control characters other than tab and line ends, and lone surrogates (not UTF-8).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class _Piece:
    """One whitespace-separated item of an interest, as written."""

    raw: str
    position: int
    negated: bool
    scope: str | None
    value: str
    quoted: bool


def parse_profile(text: str) -> Profile:
    """Parse a keyword profile; raises ProfileError(reason, position) when it is invalid."""
    if len(text) > MAX_CHARS:
        raise ProfileError(
            f"the profile is {len(text):,} characters long; the limit is {MAX_CHARS:,}", MAX_CHARS
        )
    _refuse_controls(text)
    text = text.translate(_QUOTES)
    interests: list[Interest] = []
    exclusions: list[Term] = []
    first_exclusion: int | None = None
    for start, chunk in _split_interests(text):
        compiled = _compiled_chunk(chunk, start)
        if compiled is None:
            continue
        interest, excluded = compiled.interest, compiled.excluded
        if excluded and first_exclusion is None:
            first_exclusion = compiled.negated_at
        exclusions.extend(t for t in excluded if t not in exclusions)
        if interest is not None and all(i.terms != interest.terms for i in interests):
            if len(interests) == MAX_INTERESTS:
                raise ProfileError(f"more than {MAX_INTERESTS} interests", start)
            _refuse_mixed_all(interests, interest, compiled.first_at)
            interests.append(interest)
    if not interests:
        if first_exclusion is not None:
            raise ProfileError(
                "the profile only has exclusions; add an interest (or * for every paper)",
                first_exclusion,
            )
        raise ProfileError("the profile is empty; write some keywords, or * for every paper", 0)
    return Profile(tuple(interests), tuple(exclusions))


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One interest's text compiled (``_compile_chunk``), with where its items stand."""

    interest: Interest | None
    excluded: tuple[Term, ...]
    negated_at: int | None  # the first negated item's position, if any
    first_at: int  # the first item's position

    def moved(self, start: int) -> _Compiled:
        """The same, compiled at position 0, for the chunk standing at ``start``."""
        negated_at = None if self.negated_at is None else start + self.negated_at
        return _Compiled(self.interest, self.excluded, negated_at, start + self.first_at)


def _compiled_chunk(chunk: str, start: int) -> _Compiled | None:
    """``_compile_chunk(chunk, start)``, from a cache of chunks compiled at position 0.

    Whole profile texts rarely repeat, but their interests do ("diffusion policy" in many):
    a sending run re-parses the planned profile of every digest, and planning parses every
    subscriber's. An interest compiles the same wherever it stands; only the positions move.
    An invalid one is compiled again where it stands, so its error names the right position.
    """
    try:
        found = _compiled_at_zero(chunk)
    except ProfileError:
        return _compile_chunk(chunk, start)  # raises again, with the position in the text
    return None if found is None else found.moved(start)


@lru_cache(maxsize=16384)
def _compiled_at_zero(chunk: str) -> _Compiled | None:
    return _compile_chunk(chunk, 0)


def _compile_chunk(chunk: str, offset: int) -> _Compiled | None:
    """One interest's text (starting at ``offset`` in the profile), compiled; None if empty."""
    pieces = list(_pieces(chunk, offset))
    if not pieces:
        return None
    interest, excluded = _compile(pieces)
    negated_at = next((p.position for p in pieces if p.negated), None)
    return _Compiled(interest, tuple(excluded), negated_at, pieces[0].position)


def _refuse_controls(text: str) -> None:
    """A NUL or other control character (PostgreSQL refuses NUL in text) is an error."""
    found = _CONTROL.search(text)
    if found is not None:
        code = f"U+{ord(found.group()):04X}"
        raise ProfileError(f"the profile contains a control character ({code})", found.start())


def _refuse_mixed_all(interests: list[Interest], new: Interest, position: int) -> None:
    """``*`` already means every paper: other interests beside it would change nothing."""
    if interests and any(t.kind == ALL for i in (*interests, new) for t in i.terms):
        raise ProfileError(
            "* means every paper and cannot be combined with other interests"
            " (exclusions such as -survey still apply)",
            position,
        )


def _split_interests(text: str) -> Iterator[tuple[int, str]]:
    """Split at commas and new lines outside quotes; a quote must close on its own line."""
    if '"' not in text:  # nothing to track: every separator splits (a profile is parsed for
        start = 0  # each digest rendered, and walking it character by character was slow)
        for chunk in _SEPARATOR.split(text):
            yield start, chunk
            start += len(chunk) + 1
        return
    start = 0
    quote_at: int | None = None
    for pos, char in enumerate(text):
        if char == '"':
            quote_at = pos if quote_at is None else None
        elif char == "\n" and quote_at is not None:
            raise ProfileError('unbalanced quote: this " is not closed on its line', quote_at)
        elif char in ",\n" and quote_at is None:
            yield start, text[start:pos]
            start = pos + 1
    if quote_at is not None:
        raise ProfileError('unbalanced quote: this " is never closed', quote_at)
    yield start, text[start:]


def _pieces(chunk: str, offset: int) -> Iterator[_Piece]:
    """The whitespace-separated items of one interest."""
    pos = 0
    while pos < len(chunk):
        if chunk[pos].isspace():
            pos += 1
            continue
        found = _TOKEN.match(chunk, pos)
        assert found is not None  # the pattern can match the empty string
        negated, scope, phrase, bare = found.groups()
        end = max(found.end(), pos + 1)
        yield _Piece(
            raw=chunk[pos:end],
            position=offset + pos,
            negated=bool(negated),
            scope=scope.lower() if scope else None,
            value=phrase if phrase is not None else (bare or ""),
            quoted=phrase is not None,
        )
        pos = end


def _compile(pieces: list[_Piece]) -> tuple[Interest | None, list[Term]]:
    """Turn the items of one interest into its terms and its (global) exclusions."""
    terms: list[Term] = []
    excluded: list[Term] = []
    for piece in pieces:
        term = _term(piece)
        if term is None:
            continue
        if term.kind == ALL and (piece.negated or len(pieces) > 1):
            raise ProfileError(
                "* means every paper and must be an interest on its own", piece.position
            )
        (excluded if piece.negated else terms).append(term)
    if not terms:
        if excluded:
            return None, excluded
        raise ProfileError(
            f"the interest {_shown(pieces)} has no letters or digits", pieces[0].position
        )
    text = " ".join(p.raw for p in pieces if not p.negated)
    return Interest(text, tuple(sorted(set(terms)))), excluded


def _shown(pieces: list[_Piece]) -> str:
    """An interest quoted for an error message."""
    return "'" + " ".join(p.raw for p in pieces) + "'"


def _term(piece: _Piece) -> Term | None:
    """One item as a term; None for bare punctuation such as a lone '-' or '&'."""
    if piece.scope is not None and piece.scope not in SCOPES:
        if not piece.value:
            # "Note:" is a word followed by a colon, not a scope.
            return _text_term(piece, piece.scope, ANY_FIELD)
        raise ProfileError(
            f"unknown scope '{piece.scope}:' (use author:, cat: or title:, "
            f"or put the text in quotes)",
            piece.position,
        )
    if piece.scope is not None and not piece.value:
        raise ProfileError(
            f"'{piece.scope}:' needs a word or a \"phrase\" right after the colon", piece.position
        )
    if piece.scope == "author":
        return _author_term(piece)
    if piece.scope == "cat":
        return _category_term(piece)
    if piece.value == "*" and not piece.quoted and piece.scope is None:
        return Term(ALL, ())
    return _text_term(piece, piece.value, TITLE if piece.scope == "title" else ANY_FIELD)


def _text_term(piece: _Piece, value: str, field: str) -> Term | None:
    """A word or phrase term: its stems in order."""
    stems = analyze(value).stems
    if stems:
        return Term(TEXT, stems, field)
    if piece.quoted:
        what = 'an empty "" phrase' if not value.strip() else f"the phrase {piece.raw}"
        raise ProfileError(f"{what} has no letters or digits", piece.position)
    if piece.scope is not None:
        raise ProfileError(f"'{piece.raw}' has no letters or digits to search for", piece.position)
    return None


def _author_term(piece: _Piece) -> Term:
    """An author term: folded name tokens, never stemmed."""
    tokens = name_tokens(piece.value)
    if not tokens:
        raise ProfileError(f"'{piece.raw}' has no name to search for", piece.position)
    return Term(AUTHOR, tuple(sorted(set(tokens))))


def _category_term(piece: _Piece) -> Term:
    """A category term such as cat:cs.RO (or a whole archive, cat:cs)."""
    value = fold(piece.value.strip())
    if not _CATEGORY.fullmatch(value):
        raise ProfileError(
            f"'{piece.raw}' is not an arXiv category such as cat:cs.RO", piece.position
        )
    return Term(CATEGORY, (value,))
