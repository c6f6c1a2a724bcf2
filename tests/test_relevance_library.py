"""Reading a reader's library: BibTeX, RIS, CSL-JSON and arXiv id lists; bad files refused."""

from __future__ import annotations

import json

import pytest

from mailer.relevance.library import MAX_ENTRIES, LibraryError, arxiv_id_in, parse_library


def test_bibtex_entries_keep_their_text_and_arxiv_id() -> None:
    found = parse_library(
        b"@article{chi, title={{Diffusion} Policy: \\emph{Visuomotor} Learning},\n"
        b" abstract={We {learn} actions.}, eprint={2303.04137v2}, doi={10.1/ABC}}\n"
        b"@misc{x, author={Nobody}}\n"
    )
    assert found.format == "BibTeX" and found.untitled == 1
    (entry,) = found.entries
    assert entry.title == "Diffusion Policy: Visuomotor Learning"
    assert entry.abstract == "We learn actions." and entry.arxiv_id == "2303.04137"
    assert entry.doi == "10.1/abc"


def test_ris_and_csl_json_entries() -> None:
    ris = parse_library(
        "TY  - JOUR\nTI  - Zoë's world models\nAB  - Dreams.\nUR  - https://arxiv.org/abs/2401.00001\n"
        "ER  - \n".encode()
    )
    assert ris.format == "RIS" and ris.entries[0].title == "Zoë's world models"
    assert ris.entries[0].arxiv_id == "2401.00001"
    csl = parse_library(json.dumps({"title": "One", "number": "arXiv:cs/0112017"}).encode())
    assert csl.format == "CSL-JSON" and csl.entries[0].arxiv_id == "cs/0112017"


def test_arxiv_id_lists_take_ids_urls_and_comments() -> None:
    found = parse_library(b"\xef\xbb\xbf# mine\n2303.04137v3\narXiv:2401.00001\n"
                          b"https://arxiv.org/pdf/2402.00002.pdf\nmath.GT/0309136\n")  # fmt: skip
    assert [e.arxiv_id for e in found.entries] == [
        "2303.04137", "2401.00001", "2402.00002", "math.GT/0309136",
    ]  # fmt: skip
    assert arxiv_id_in("not an id") is None and arxiv_id_in(None) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"text\x00", "not text"),
        (b"@article{x, title={open", "does not parse"),
        (b"[1, 2]", "list of objects"),
        (b"{not json", "not valid JSON"),
        (b"TY  - JOUR\nTI  - no end\n", "no complete entry"),
        (b"2303.04137\nhello\n", "line 2 is not an arXiv id"),
        (b'[{"abstract": "x"}]', "no entry with a title"),
        (b"1" * (2 * 1024 * 1024 + 1), "over 2 MB"),
        (b"\n".join(b"2303.%05d" % i for i in range(MAX_ENTRIES + 1)), "at most 1000"),
    ],
)
def test_bad_files_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(LibraryError, match=message):
        parse_library(data)
