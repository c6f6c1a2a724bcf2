"""Sources against a hostile upstream: per-item isolation, bounded reads, masked credentials.

Every payload comes from ``tests/helpers/hostile.py`` through a real local HTTP server (or a
real file); each test names the failure of issue 21 it reproduces.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from mailer.errors import FetchError, PayloadError, SourceError, SourceSpecError
from mailer.models import Paper
from mailer.sources import FetchResult, HttpPolicy, Validators, fields, make_source
from mailer.sources.arxiv import parse as parse_arxiv
from mailer.sources.base import Limits
from mailer.sources.files import parse as parse_file
from mailer.sources.hf_daily import parse as parse_hf
from mailer.sources.rss import parse as parse_rss
from tests.helpers import hostile
from tests.helpers.http_server import Canned, LocalHTTPServer

DAY = date(2025, 8, 6)
MIB = 1024 * 1024


async def _no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


def fetch(spec: str, server: LocalHTTPServer | None = None, **policy: object) -> FetchResult:
    """One fetch of ``spec`` (hf-daily reads ``/api`` on ``server``) under ``policy``."""
    chosen = HttpPolicy(sleep=_no_sleep, **policy)  # type: ignore[arg-type]
    url = server.url("/api") if server else "http://127.0.0.1:9/api"
    source = make_source(spec, hf_api_url=url, policy=chosen)

    async def go() -> FetchResult:
        async with httpx.AsyncClient(timeout=5) as client:
            return await source.fetch(client, Validators(), DAY)

    return asyncio.run(go())


# --- per item -----------------------------------------------------------------------------


def test_an_out_of_range_number_skips_that_item_only() -> None:
    """Issue 21.1: ``upvotes: 10**40`` aborted the whole fetch with an OverflowError."""
    result = parse_hf(hostile.huge_int_items())
    assert [p.key for p in result.papers] == ["2508.00001"]
    assert result.papers[0].upvotes == 7
    assert result.skip_reasons == (
        "item 2: upvotes of about 40 digits is out of range (0 to 2,147,483,647)",
        "item 3: comments -5 is out of range (0 to 2,147,483,647)",
    )


def test_a_number_too_long_to_convert_skips_the_item() -> None:
    data = hostile.hf_json(hostile.hf_item("2508.00031", "Long", upvotes="9" * 5000))
    result = parse_hf(data)
    assert result.papers == () and result.skip_reasons == ("item 1: a number of 5,000 digits",)
    with pytest.raises(PayloadError, match="unreadable JSON"):
        parse_hf(b'[{"paper": {"id": "2508.00031", "upvotes": ' + b"9" * 5000 + b"}}]")


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ""])
def test_json_nested_200000_deep_is_a_payload_error(suffix: str) -> None:
    """Issue 21.1: JSON nested 200,000 deep raised RecursionError out of the fetch."""
    with pytest.raises(PayloadError, match="nested too deeply"):
        if suffix:
            parse_file(hostile.deep_json(), "file:x", suffix)
        else:
            parse_hf(hostile.deep_json())


def test_one_deeply_nested_line_skips_that_line() -> None:
    data = b'{"title": "fine"}\n' + b'{"a":' * 200_000 + b"1" + b"}" * 200_000 + b"\n"
    result = parse_file(data, "file:x", ".jsonl")
    assert [p.title for p in result.papers] == ["fine"]
    assert result.skip_reasons == ("line 2: nested too deeply",)


def test_xml_nested_200000_deep_is_read_without_recursion() -> None:
    result, _ = parse_arxiv(hostile.deep_xml())
    assert [p.title for p in result.papers] == ["x"]
    # feedparser keeps the markup as text (and takes 13 s at 200,000 deep: 20,000 will do).
    feed = parse_rss(hostile.deep_xml(20_000), "rss:x")
    assert all(len(p.title) <= fields.MAX_TITLE for p in feed.papers)


def test_nul_controls_and_surrogates_are_removed_from_text() -> None:
    """Issue 21.1: a NUL in a title broke PostgreSQL; a lone surrogate breaks both databases."""
    first, second = parse_hf(hostile.nul_and_controls()).papers
    assert first.title == "Robots and control"
    assert first.abstract == "ab"
    assert second.title == "Lone surrogate"
    assert second.authors == ("Ann Lee",)
    for paper in (first, second):
        for value in (paper.title, paper.abstract, *paper.authors):
            assert value.encode("utf-8").isascii()
            assert not any(ord(ch) < 32 for ch in value)


def test_every_text_field_is_capped() -> None:
    """Issue 21.2: a 5.6 MB title was stored, then served 16 MB previews and a 40 MB email."""
    (paper,) = parse_hf(hostile.huge_title()).papers
    assert len(paper.title) <= fields.MAX_TITLE and paper.title.endswith("…")
    assert paper.title.startswith("robots robots")
    assert len(paper.abstract) <= fields.MAX_ABSTRACT
    item = hostile.hf_item(
        "2508.00041",
        "Crowded",
        authors=[{"name": f"Author {i} " + "x" * 300} for i in range(5000)],
        ai_keywords=[f"k{i}" for i in range(1000)],
        githubRepo="https://github.com/" + "a" * 5000,
        projectPage="javascript:alert(1)",
    )
    (crowded,) = parse_hf(hostile.hf_json(item)).papers
    assert len(crowded.authors) == fields.MAX_AUTHORS
    assert all(len(name) <= fields.MAX_NAME for name in crowded.authors)
    assert len(crowded.keywords) == fields.MAX_TERMS
    assert crowded.code_url is None and crowded.project_url is None


def test_bounded_refuses_what_no_column_can_hold() -> None:
    with pytest.raises(ValueError, match="identity key of 300 characters"):
        fields.bounded(Paper(key="k" * 300, title="t"))
    with pytest.raises(ValueError, match="upvotes -1 is out of range"):
        fields.bounded(Paper(key="k", title="t", upvotes=-1))
    with pytest.raises(ValueError, match="no title"):
        fields.bounded(Paper(key="k", title="\x00\x07 "))


def test_a_huge_own_key_in_a_file_is_hashed() -> None:
    result = parse_file(json.dumps([{"title": "t", "key": "k" * 5000}]).encode(), "f", ".json")
    assert result.papers[0].key.startswith("key:sha1:")


def test_items_past_the_cap_are_counted_not_read() -> None:
    """Issue 21.2: a 100k-item feed was read and stored whole."""
    result = parse_hf(hostile.many_items(1000), max_items=100)
    assert len(result.papers) == 100
    assert result.skipped == 900
    assert result.skip_reasons == (
        "900 items past the first 100 not read (MAILER_FETCH_MAX_ITEMS)",
    )


def test_reasons_are_kept_for_the_first_hundred_skips_only() -> None:
    data = json.dumps([{"paper": {"id": "nope"}}] * 1000).encode()
    result = parse_hf(data)
    assert result.skipped == 1000
    assert len(result.skip_reasons) == 101
    assert result.skip_reasons[-1] == "900 more items skipped"


def test_arxiv_reads_a_huge_feed_entry_by_entry() -> None:
    entries = "".join(
        f"<entry><id>oai:arXiv.org:2508.{i:05d}v1</id><title>T {i}</title></entry>"
        for i in range(3000)
    )
    feed = f'<feed xmlns="http://www.w3.org/2005/Atom">{entries}</feed>'.encode()
    result, _ = parse_arxiv(feed, max_items=1000)
    assert len(result.papers) == 1000 and result.skipped == 2000


# --- bounded reads over HTTP --------------------------------------------------------------


def test_a_gzip_bomb_is_stopped_at_the_size_cap(server: LocalHTTPServer) -> None:
    """Issue 21.2: a 408 KB gzip bomb took the fetch to 931 MB (see bench/hostile.py for RSS)."""
    server.route("/api", hostile.bomb_answer(size=64 * MIB))  # 64 KB on the wire
    with pytest.raises(PayloadError, match=r"over the 1\.0 MiB limit .* once decompressed"):
        fetch("hf-daily", server, limits=Limits(max_bytes=MIB))


def test_a_gzip_bomb_is_refused_by_its_ratio_before_the_cap(server: LocalHTTPServer) -> None:
    """A legitimate feed may use the whole size cap; a body inflating 100-fold may not."""
    server.route("/api", hostile.bomb_answer(size=64 * MIB))
    with pytest.raises(PayloadError, match="inflates more than 200-fold"):
        fetch("hf-daily", server)
    items = [hostile.hf_item(f"2508.{10000 + i}", "Same title " * 20) for i in range(3000)]
    packed = hostile.gzip(hostile.hf_json(*items))
    gzipped = {"Content-Encoding": "gzip"}
    server.route("/api", Canned(packed, content_type="application/json", headers=gzipped))
    assert len(fetch("hf-daily", server).papers) == 3000  # repetitive, yet a real feed


def test_a_bad_gzip_body_is_a_payload_error(server: LocalHTTPServer) -> None:
    """Issue 21.1: a bad gzip body raised httpx.DecodingError out of the fetch."""
    server.route("/api", hostile.bad_gzip_answer())
    with pytest.raises(PayloadError, match=r"compressed response .* is corrupt"):
        fetch("hf-daily", server)


def test_a_truncated_gzip_body_is_a_payload_error(server: LocalHTTPServer) -> None:
    body = hostile.gzip(hostile.hf_json(hostile.hf_item("2508.00051")))
    server.route(
        "/api",
        Canned(body[:-12], content_type="application/json", headers={"Content-Encoding": "gzip"}),
    )
    with pytest.raises(PayloadError, match="is truncated"):
        fetch("hf-daily", server)


def test_gzip_and_deflate_bodies_are_read(server: LocalHTTPServer) -> None:
    data = hostile.hf_json(hostile.hf_item("2508.00052"))
    server.route(
        "/api",
        Canned(
            hostile.gzip(data),
            content_type="application/json",
            headers={"Content-Encoding": "gzip"},
        ),
    )
    assert [p.key for p in fetch("hf-daily", server).papers] == ["2508.00052"]
    assert server.requests[0].header("Accept-Encoding") == "gzip, deflate"


def test_an_unsupported_encoding_is_refused(server: LocalHTTPServer) -> None:
    server.route(
        "/api", Canned(b"??", content_type="application/json", headers={"Content-Encoding": "br"})
    )
    with pytest.raises(PayloadError, match="unsupported Content-Encoding 'br'"):
        fetch("hf-daily", server)


def test_a_large_declared_length_is_refused_before_reading(server: LocalHTTPServer) -> None:
    server.route("/api", Canned(b"[]", content_type="application/json", length=10 * MIB))
    with pytest.raises(PayloadError, match=r"the response is 10\.0 MiB, over the 1\.0 MiB limit"):
        fetch("hf-daily", server, limits=Limits(max_bytes=MIB))


def test_an_endless_chunked_body_is_cut_at_the_cap(server: LocalHTTPServer) -> None:
    server.route(
        "/api", Canned(content_type="application/json", chunks=lambda: hostile.zeros(1024 * MIB))
    )
    with pytest.raises(PayloadError, match=r"over the 2\.0 MiB limit"):
        fetch("hf-daily", server, limits=Limits(max_bytes=2 * MIB))


def test_a_redirect_loop_is_a_fetch_error(server: LocalHTTPServer) -> None:
    """Issue 21.1: a redirect loop raised httpx.TooManyRedirects out of the fetch."""
    server.route("/api", hostile.redirect_loop("/loop"))
    server.route("/loop", hostile.redirect_loop("/api"))
    with pytest.raises(
        FetchError, match=r"^hf-daily: redirect loop at http://127\.0\.0\.1:\d+/loop$"
    ):
        fetch("hf-daily", server)
    assert len(server.requests) == 3  # /api?date=, /loop, /api: not retried


def test_a_long_redirect_chain_is_cut(server: LocalHTTPServer) -> None:
    for hop in range(10):
        server.route(f"/hop{hop}", Canned(status=302, headers={"Location": f"/hop{hop + 1}"}))
    server.route("/api", Canned(status=302, headers={"Location": "/hop0"}))
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch("hf-daily", server)


def test_a_redirect_body_is_never_read(server: LocalHTTPServer) -> None:
    server.route(
        "/api",
        Canned(status=302, headers={"Location": "/real"}, chunks=lambda: hostile.zeros(1024 * MIB)),
    )
    server.route("/real", Canned.json([hostile.hf_item("2508.00053")]))
    assert [p.key for p in fetch("hf-daily", server, limits=Limits(max_bytes=MIB)).papers] == [
        "2508.00053"
    ]


def test_a_drip_ends_at_the_deadline(server: LocalHTTPServer) -> None:
    """Issue 21.2: a server sending a byte a second kept a fetch alive past any timeout."""
    body = hostile.hf_json(hostile.hf_item("2508.00061"))
    server.route("/api", hostile.drip_answer(body, interval=0.2))  # ~18 s to send it all
    with pytest.raises(
        FetchError, match=r"within the 0\.5 s deadline \(MAILER_HTTP_DEADLINE; \d+ bytes received\)"
    ):
        fetch("hf-daily", server, deadline=0.5, timeout=5.0)
    assert len(server.requests) == 1  # a deadline is not retried


# --- credentials and file: ----------------------------------------------------------------


def test_feed_credentials_never_appear_in_the_name_or_errors(server: LocalHTTPServer) -> None:
    """Issue 21.5: rss:http://user:token@host/feed put the token in logs and /healthz."""
    url = server.url("/feed").replace("http://", "http://reader:s3cret-token@") + "?api_key=k3y"
    source = make_source(f"rss:{url}")
    masked_url = server.url("/feed").replace("http://", "http://reader:***@") + "?api_key=***"
    assert source.name == f"rss:{masked_url}"
    server.route("/feed", Canned(status=404))
    with pytest.raises(FetchError) as failure:
        fetch(f"rss:{url}", server)
    assert "s3cret" not in str(failure.value) and "k3y" not in str(failure.value)
    assert (
        server.requests[0].header(
            "Authorization",
        )
        is not None
    )  # still sent, never shown


def test_file_refuses_what_is_not_a_papers_file(tmp_path: Path) -> None:
    """Issue 21.3: --source file:/etc/passwd reported "ok, 16 new" and served the lines."""
    with pytest.raises(
        SourceSpecError, match=r"refused: a papers file must be named \.json .*'passwd' is none"
    ):
        make_source("file:/etc/passwd")
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")  # the name that counts is the one the link resolves to
    with pytest.raises(SourceSpecError, match="'zero' is none of these"):
        make_source(f"file:{zero}")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(PayloadError, match="not a regular file"):
        fetch(f"file:{tmp_path / 'folder.json'}")
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(PayloadError, match="not a regular file"):
        fetch(f"file:{fifo}")  # refused at once: opening never waits for a writer


def test_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.jsonl"
    big.write_bytes(b'{"title": "x"}\n' * 100_000)
    with pytest.raises(PayloadError, match=r"over the 1\.0 MiB limit \(MAILER_FETCH_MAX_BYTES\)"):
        fetch(f"file:{big}", limits=Limits(max_bytes=MIB))
    assert len(fetch(f"file:{big}", limits=Limits(max_items=10)).papers) == 1  # one distinct


def test_every_failure_is_a_source_error(server: LocalHTTPServer) -> None:
    """Whatever the upstream does, the fetch raises SourceError (the pipeline records it)."""
    answers = [
        hostile.bad_gzip_answer(),
        hostile.redirect_loop("/api"),
        Canned(status=302, headers={"Location": "ftp://127.0.0.1/x"}),
        Canned(status=302, headers={"Location": "http://[::1"}),
        Canned(hostile.deep_json(), content_type="application/json"),
    ]
    for answer in answers:
        server.route("/api", answer)
        with pytest.raises(SourceError):
            fetch("hf-daily", server, retries=0)
