"""Text normalisation with offsets: markup stripping, folding, tokenising and stemming."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

WORD = re.compile(r"[^\W_]+")  # a run of letters and digits: one token
_WORD = WORD
_MATH = re.compile(r"\$([^$\n]{1,300})\$")
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# Only real HTML tag names: a bare "<" in an abstract ("a < b and c > d") is maths, not markup.
_TAG = re.compile(
    r"</?(?:a|b|i|u|s|em|strong|sub|sup|span|p|br|div|code|tt|small|big|font|mark|math|"
    r"mi|mo|mn|msub|msup|mrow)(?:\s[^<>]{0,200})?/?>",
    re.IGNORECASE,
)
_MARKUP = re.compile(f"{_MATH.pattern}|{_ENTITY.pattern}|{_TAG.pattern}", re.IGNORECASE)
_TEX_STYLE = re.compile(
    r"\\(?:text(?:bf|it|rm|sf|tt)?|math(?:rm|bf|it|sf|tt|cal|bb|frak|scr)|operatorname|emph|"
    r"boldsymbol|bm|mbox)(?![A-Za-z])"
)
_TEX_COMMAND = re.compile(r"\\([A-Za-z]+)|\\.")
_GREEK = frozenset(
    re.findall(
        r"\w+",
        "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu "
        "nu xi omicron pi varpi rho varrho sigma varsigma tau upsilon phi varphi chi psi omega",
    )
)
# Letters that do not decompose into base letter + accent under NFKD.
_EXTRA_FOLD = {
    "ø": "o",
    "ł": "l",
    "đ": "d",
    "ð": "d",
    "þ": "th",
    "æ": "ae",
    "œ": "oe",
    "\u0131": "i",
}

# PyStemmer's C stemmer when installed (a dependency), else snowballstemmer's pure Python one:
# the same algorithm, the same stems (tests/test_stemming.py), a twentieth of the CPU.
_stemmer = snowballstemmer.stemmer("english")


@dataclass(frozen=True, slots=True)
class Field:
    """The tokens of one text field: folded words, their stems and original offsets."""

    words: tuple[str, ...]
    stems: tuple[str, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Snowball English stem of a folded word (cached: a batch repeats words a lot)."""
    return str(_stemmer.stemWord(word))


@lru_cache(maxsize=20_000)
def fold_char(char: str) -> str:
    """NFKC, accent-fold and case-fold one character (may return zero or several)."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", char))
    base = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return "".join(_EXTRA_FOLD.get(c, c) for c in base)


def fold(text: str) -> str:
    """Fold a whole string (no offsets kept): used for names and categories."""
    if text.isascii():
        return text.lower()
    return "".join(fold_char(c) for c in text)


def name_tokens(text: str) -> tuple[str, ...]:
    """Folded, unstemmed tokens of a person's name."""
    return tuple(_WORD.findall(fold(text)))


def _math_text(inner: str) -> str:
    """The searchable text of a LaTeX math fragment: ``\\pi2\\text{vec}`` -> ``pi2vec``."""
    inner = _TEX_STYLE.sub("", inner)
    inner = _TEX_COMMAND.sub(lambda m: m.group(1) if m.group(1) in _GREEK else " ", inner)
    return re.sub(r"[{}^_]", "", inner)


def _replacement(match: re.Match[str]) -> str:
    """What a markup fragment stands for in searchable text."""
    found = match.group(0)
    if found.startswith("$"):
        return _math_text(found[1:-1])
    if found.startswith("&"):
        return html.unescape(found)
    return " "


def _clean(text: str) -> tuple[str, list[int], list[int]]:
    """Strip LaTeX math and HTML markup, keeping each output char's original [start, end)."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    last = 0
    for match in _MARKUP.finditer(text):
        _copy(text, last, match.start(), out, starts, ends)
        for char in _replacement(match):
            out.append(char)
            starts.append(match.start())
            ends.append(match.end())
        last = match.end()
    _copy(text, last, len(text), out, starts, ends)
    return "".join(out), starts, ends


def _copy(text: str, lo: int, hi: int, out: list[str], starts: list[int], ends: list[int]) -> None:
    """Copy ``text[lo:hi]`` unchanged, each char mapping to itself."""
    out.append(text[lo:hi])
    starts.extend(range(lo, hi))
    ends.extend(range(lo + 1, hi + 1))


def _fold_mapped(text: str, starts: list[int], ends: list[int]) -> tuple[str, list[int], list[int]]:
    """Fold char by char so every folded char still knows its original range."""
    out: list[str] = []
    new_starts: list[int] = []
    new_ends: list[int] = []
    for char, start, end in zip(text, starts, ends, strict=True):
        folded = char.lower() if char.isascii() else fold_char(char)
        for piece in folded:
            out.append(piece)
            new_starts.append(start)
            new_ends.append(end)
    return "".join(out), new_starts, new_ends


def analyze(text: str) -> Field:
    """Tokenise text into folded words and stems with offsets into the ORIGINAL string."""
    if text.isascii() and not _MARKUP.search(text):
        return _analyze_plain(text)
    return _analyze_marked(text)


def _analyze_marked(text: str) -> Field:
    """``analyze`` for any text: markup stripped and characters folded one by one, each
    keeping its original range (the reference the plain path must agree with)."""
    cleaned, starts, ends = _clean(text)
    folded, starts, ends = _fold_mapped(cleaned, starts, ends)
    found = [
        (m.group(0), starts[m.start()], _extend_marks(text, ends[m.end() - 1]))
        for m in _WORD.finditer(folded)
    ]
    words = tuple(w for w, _, _ in found)
    return Field(
        words=words,
        stems=tuple(stem(w) for w in words),
        starts=tuple(s for _, s, _ in found),
        ends=tuple(e for _, _, e in found),
    )


def _analyze_plain(text: str) -> Field:
    """``analyze`` for ASCII text without markup, where folding is ``lower()`` and offsets
    are the matches' own: mapped over the matches so the loops stay in C (every paper of a
    planner's window goes through here before the first digest is matched)."""
    found = list(_WORD.finditer(text.lower()))
    words = tuple(map(_whole_match, found))
    return Field(
        words=words,
        stems=stems_of(words),
        starts=tuple(map(_match_start, found)),
        ends=tuple(map(_match_end, found)),
    )


_whole_match = re.Match.group
_match_start = re.Match.start
_match_end = re.Match.end


class _StemCache(dict[str, str]):
    """word -> stem, filled on first sight: ``map(cache.__getitem__, words)`` stays in C."""

    def __missing__(self, word: str) -> str:
        if len(self) >= 500_000:  # bounded: a flood of odd tokens must not grow it forever
            self.clear()
        found = self[word] = stem(word)
        return found


_stems = _StemCache()


def is_plain(text: str) -> bool:
    """ASCII without markup: its words are ``text.lower()`` split at non-word characters."""
    return text.isascii() and not _MARKUP.search(text)


def plain_words(text: str) -> tuple[str, ...] | None:
    """The folded words of plain ASCII text without markup (``text.lower()`` split into words,
    exactly as ``analyze`` would), else None: such text needs ``analyze``."""
    return tuple(_WORD.findall(text.lower())) if is_plain(text) else None


def stems_of(words: tuple[str, ...]) -> tuple[str, ...]:
    """The stems of folded words."""
    return tuple(map(_stems.__getitem__, words))


def field_stems(text: str) -> tuple[str, ...]:
    """``analyze(text).stems`` without offsets, at a third of the cost (whole-store index)."""
    words = plain_words(text)
    return analyze(text).stems if words is None else stems_of(words)


def _extend_marks(text: str, end: int) -> int:
    """Move a span end past combining accents that follow it in the original text."""
    while end < len(text) and unicodedata.combining(text[end]):
        end += 1
    return end
