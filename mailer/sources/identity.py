"""One identity per paper: arXiv ids without version, else a namespaced source id or title hash."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata

# New-style ids (0704.0001 onwards: YYMM.NNNN, YYMM.NNNNN since 2015) and old-style
# archive ids (hep-th/9901001, math.GT/0309136), each optionally with a version.
_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7}"
_BARE = re.compile(rf"^(?:arxiv:)?({_NEW_ID}|{_OLD_ID})(?:v\d+)?$", re.IGNORECASE)
_EMBEDDED = re.compile(
    rf"(?:arxiv\.org/(?:abs|pdf|html)/|arxiv:|oai:arxiv\.org:)({_NEW_ID}|{_OLD_ID})(?:v\d+)?",
    re.IGNORECASE,
)
MAX_RAW_TEXT = 50_000  # characters of any one field read from a source
_MAX_KEY = 200  # paper.key is VARCHAR(255); longer own ids are hashed
_WS = re.compile(r"\s+")
# C0 and C1 control characters and lone surrogates: a NUL breaks PostgreSQL text, and a
# surrogate cannot be encoded as UTF-8 by either database. The controls Python counts as
# whitespace (\t-\r, \x1c-\x1f, \x85) are collapsed into spaces instead.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff]")
_NON_WORD = re.compile(r"[^\w]+|_+")


def normalise_arxiv_id(value: str) -> str | None:
    """The arXiv id without version ("2508.01234v2" -> "2508.01234"); None if not an arXiv id.

    Accepts bare ids, ``arXiv:`` prefixes, abs/pdf URLs and OAI identifiers, new- and old-style.
    """
    text = value.strip()
    bare = _BARE.match(text)
    found = bare or _EMBEDDED.search(text)
    if found is None:
        return None
    ident = found.group(1)
    # Old-style archive names are lower case except the subject class ("math.GT").
    return ident if "/" in ident else ident.lower()


def clean_text(value: str) -> str:
    """Text with HTML entities decoded, control characters and lone surrogates removed, and all
    whitespace runs (newlines too) collapsed."""
    # No field is kept longer than a few thousand characters: cut first, so a 5 MB title costs
    # a 50 KB clean-up instead of copies and word lists of the whole of it.
    return _WS.sub(" ", _CONTROL.sub("", html.unescape(value[:MAX_RAW_TEXT]))).strip()


def normalise_title(title: str) -> str:
    """A title folded for comparison: NFKC, case-folded, punctuation and spacing collapsed."""
    folded = unicodedata.normalize("NFKC", clean_text(title)).casefold()
    return _NON_WORD.sub(" ", folded).strip()


def title_key(title: str) -> str:
    """The identity key of a paper known only by its title: ``title:<sha1>``."""
    digest = hashlib.sha1(normalise_title(title).encode("utf-8")).hexdigest()
    return f"title:{digest}"


def _namespaced(namespace: str, value: str) -> str:
    key = f"{namespace}:{value}"
    if len(key) <= _MAX_KEY:
        return key
    return f"{namespace}:sha1:{hashlib.sha1(value.encode('utf-8')).hexdigest()}"


def paper_identity(
    *,
    arxiv_id: str | None = None,
    own_id: str | None = None,
    url: str | None = None,
    title: str | None = None,
    namespace: str = "id",
) -> str:
    """The paper's identity key: the arXiv id whenever any field reveals one, else own id,
    else URL, else a title hash. Raises ValueError when nothing identifies the paper."""
    for candidate in (arxiv_id, own_id, url):
        found = normalise_arxiv_id(candidate) if candidate else None
        if found:
            return found
    if own_id and own_id.strip():
        return _namespaced(namespace, own_id.strip())
    if url and url.strip():
        return _namespaced("url", url.strip())
    if title and normalise_title(title):
        return title_key(title)
    raise ValueError("no id, link or title")


def arxiv_links(arxiv_id: str) -> tuple[str, str]:
    """The abs page and PDF URLs of an arXiv id."""
    return f"https://arxiv.org/abs/{arxiv_id}", f"https://arxiv.org/pdf/{arxiv_id}"
