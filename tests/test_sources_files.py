"""file:PATH sources: JSON, JSONL and the listing format; the bundled sample."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import httpx
import pytest

from mailer.errors import FetchError, PayloadError, SourceSpecError
from mailer.sources import SAMPLE_PATH, FetchResult, Validators, make_source, title_key
from mailer.sources.files import parse

SEEDS = Path(__file__).resolve().parent.parent.parent / "shared" / "seeds"
DAY = date(2025, 8, 6)


def fetch(spec: str, validators: Validators | None = None) -> FetchResult:
    async def go() -> FetchResult:
        async with httpx.AsyncClient() as client:
            return await make_source(spec).fetch(client, validators or Validators(), DAY)

    return asyncio.run(go())


def test_json_array_fields_are_read() -> None:
    data = [
        {
            "id": "2508.01234v2",
            "title": "A  Title\nwith breaks",
            "summary": "An &amp; abstract",
            "authors": ["Ann Example", {"name": "Bo Example"}, ""],
            "categories": "cs.LG, cs.CL",
            "published": "2025-08-05T10:00:00Z",
            "upvotes": "7",
            "code_url": "https://github.com/x/y",
        },
        {"key": "custom:1", "title": "Keyed", "abstract": "Kept", "upvotes": True},
        {"title": "Own id", "id": "paper-9"},
    ]
    result = parse(json.dumps(data).encode(), "file:x", ".json")
    first, keyed, own = result.papers
    assert first.key == first.arxiv_id == "2508.01234"
    assert first.title == "A Title with breaks"
    assert first.abstract == "An & abstract"
    assert first.authors == ("Ann Example", "Bo Example")
    assert first.categories == ("cs.LG", "cs.CL")
    assert first.published == date(2025, 8, 5)
    assert first.upvotes == 7
    assert first.url == "https://arxiv.org/abs/2508.01234"
    assert first.pdf_url == "https://arxiv.org/pdf/2508.01234"
    assert first.code_url == "https://github.com/x/y"
    assert first.source == "file:x"
    assert keyed.key == "custom:1"
    assert keyed.upvotes is None  # a bool is not a count
    assert own.key == "file:paper-9"
    assert own.url is not None and own.url.startswith("https://arxiv.org/search/?query=Own+id")
    assert result.skip_reasons == ()


def test_malformed_items_are_skipped_and_counted() -> None:
    data = b'[{"title": "ok"}, {"abstract": "no title"}, 3, {"title": "OK"}]'
    result = parse(data, "file:x", ".json")
    assert [p.title for p in result.papers] == ["ok"]
    assert result.skip_reasons == (
        "item 2: no title",
        "item 3: not an object",
        "item 4: duplicate title 'OK'",
    )


def test_jsonl_skips_unreadable_lines_but_keeps_the_rest() -> None:
    data = b'{"title": "one"}\n\n{"title": \n{"title": "two", "arxiv_id": "2501.00001"}\n'
    result = parse(data, "file:x", ".jsonl")
    assert [p.title for p in result.papers] == ["one", "two"]
    assert result.skipped == 1
    assert result.skip_reasons[0].startswith("line 3: invalid JSON")


def test_format_is_sniffed_without_a_known_suffix() -> None:
    assert parse(b'[{"title": "a"}]', "f", "").papers[0].title == "a"
    assert [p.title for p in parse(b'{"title": "a"}\n{"title": "b"}', "f", "").papers] == [
        "a",
        "b",
    ]
    assert parse(b'{"title": "only"}', "f", "").papers[0].title == "only"
    assert parse(b"Title line\nAbstract line", "f", "").papers[0].abstract == "Abstract line"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'[{"title": "a"}, {"title": ',
            r"invalid JSON at line 1 column 28: Expecting value \(truncated\?\)",
        ),
        (b'"just a string"', "expected a JSON array of papers"),
        (b"\xff\xfe[]", "not UTF-8"),
        (b"{bad\n{worse\n", "no readable JSON line"),
    ],
)
def test_unreadable_payloads_raise_payload_error(data: bytes, message: str) -> None:
    suffix = ".jsonl" if data.startswith(b"{") else ".json"
    with pytest.raises(PayloadError, match=message):
        parse(data, "file:x", suffix)


def test_listing_drops_headers_and_the_glued_subscribe() -> None:
    text = (
        "new\n\nGet trending papers in your email inbox!\n\nSubscribe\n\nDaily Papers\n\n"
        "byAK and the research community\n\nAug 6\n\nFirst Title\n\nFirst abstract.\n\n"
        "Second Title\n\nSecond abstract.\n"
    )
    result = parse(text.encode(), "f", ".txt")
    assert [(p.title, p.abstract) for p in result.papers] == [
        ("First Title", "First abstract."),
        ("Second Title", "Second abstract."),
    ]
    glued = "Get trending papers in your email inbox!\nSubscribeGlued Title\nIts abstract.\n"
    only = parse(glued.encode(), "f", ".txt").papers[0]
    assert only.title == "Glued Title"
    assert only.key == title_key("Glued Title")
    assert only.url == "https://arxiv.org/search/?query=Glued+Title&searchtype=title"


def test_listing_resyncs_after_a_missing_title_or_abstract() -> None:
    long = "x " * 300
    text = f"Title A\n{long}\n{long}\nTitle B\nTitle C\n{long}\nTitle C\nagain\n"
    result = parse(text.encode(), "f", ".txt")
    assert [(p.title, bool(p.abstract)) for p in result.papers] == [
        ("Title A", True),
        ("Title B", False),
        ("Title C", True),
    ]
    assert result.skip_reasons == (
        "line 3: text without a title",
        "line 7: duplicate title 'Title C'",
    )


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds not present")
@pytest.mark.parametrize(("name", "count"), [("000_", 89), ("001_", 197)])
def test_seed_listings_parse_completely(name: str, count: int) -> None:
    path = next(SEEDS.glob(f"{name}*.txt"))
    result = parse(path.read_bytes(), "f", ".txt")
    assert len(result.papers) == count
    assert result.skip_reasons == ()
    assert all(len(p.title) < 300 and len(p.abstract) > 300 for p in result.papers)
    assert not any(p.title.startswith(("Subscribe", "Get trending")) for p in result.papers)


def test_bundled_sample_loads_through_make_source() -> None:
    assert SAMPLE_PATH.name == "sample_papers.jsonl"
    assert SAMPLE_PATH.parent.name == "data" and SAMPLE_PATH.parent.parent.name == "mailer"
    result = fetch(f"file:{SAMPLE_PATH}")
    assert 250 <= len(result.papers) <= 290
    assert result.skipped == 0
    keys = [p.key for p in result.papers]
    assert len(set(keys)) == len(keys)
    assert len({title_key(p.title) for p in result.papers}) == len(keys)
    assert all(p.abstract and p.url for p in result.papers)
    assert all(p.authors == () and p.arxiv_id is None and p.upvotes is None for p in result.papers)
    assert any("$" in p.title for p in result.papers)  # LaTeX fragments survive


def test_file_source_reports_not_modified_by_content_hash(tmp_path: Path) -> None:
    path = tmp_path / "papers.json"
    path.write_text('[{"title": "a"}]')
    first = fetch(f"file:{path}")
    assert len(first.papers) == 1 and not first.not_modified
    assert first.validators.etag and first.validators.last_modified
    again = fetch(f"file:{path}", first.validators)
    assert again.not_modified and again.papers == ()
    path.write_text('[{"title": "a"}, {"title": "b"}]')
    changed = fetch(f"file:{path}", first.validators)
    assert not changed.not_modified and len(changed.papers) == 2


def test_file_source_name_is_absolute_and_errors_are_clear(tmp_path: Path) -> None:
    source = make_source(f"file:{tmp_path}/../{tmp_path.name}/missing.json")
    assert source.name == f"file:{tmp_path / 'missing.json'}"
    assert source.kind == "file"
    with pytest.raises(FetchError, match=r"^file:/.*missing\.json: cannot read the file"):
        fetch(f"file:{tmp_path / 'missing.json'}")
    with pytest.raises(SourceSpecError, match="names no file"):
        make_source("file:  ")
