"""The stemmer the matching engine uses is Snowball English, the same stems as the reference.

PyStemmer (C) is what ``snowballstemmer.stemmer`` hands out when installed; snowballstemmer's
own pure-Python ``EnglishStemmer`` is the reference it must agree with, word for word.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from snowballstemmer.english_stemmer import EnglishStemmer

from mailer.matching import text

SAMPLE = Path(text.__file__).resolve().parent.parent / "data" / "sample_papers.jsonl"
SUFFIXES = ("s", "es", "ed", "ing", "ly", "ness", "ment", "ational", "ization", "fulness",
            "ousness", "iveness", "ance", "ence", "able", "ible", "ism", "ive", "ize", "ies",
            "ied", "eed", "eedly", "li", "bli", "ogi", "alli", "entli", "ousli")  # fmt: skip


def vocabulary() -> list[str]:
    """Every word of the bundled sample, those words with English suffixes, and a few
    non-Latin and digit-mixed tokens the tokenizer can produce."""
    words: set[str] = set()
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        paper = json.loads(line)
        found = re.findall(r"[^\W_]+", f"{paper.get('title', '')} {paper.get('summary', '')}"
                           f" {paper.get('abstract', '')}".lower())  # fmt: skip
        words.update(found)
    base = sorted(w for w in words if w.isalpha())[:3000]
    words.update(w + s for w in base for s in SUFFIXES)
    words.update(["模型", "сети", "λόγος", "gpt4", "3d", "résumé", "naïve", "x"])
    return sorted(words)


def test_the_engines_stemmer_is_the_snowball_reference_word_for_word() -> None:
    words = vocabulary()
    assert len(words) > 50_000
    reference = EnglishStemmer()
    differ = [(w, text.stem(w), reference.stemWord(w)) for w in words
              if text.stem(w) != reference.stemWord(w)]  # fmt: skip
    assert differ == []


def test_the_c_stemmer_is_the_one_in_use() -> None:
    """The dependency is installed and picked: otherwise stemming costs 20 times the CPU."""
    assert type(text._stemmer).__module__ == "Stemmer"
