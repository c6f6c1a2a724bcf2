"""The fast path answers cached pages byte for byte as the routes do."""

from __future__ import annotations

import re

import httpx
import pytest

from mailer.web.csrf import COOKIE

VOLATILE = {"date", "server"}


def headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in VOLATILE}


@pytest.mark.parametrize(
    "path",
    [
        "/papers",
        "/papers?date=2026-11-22",
        "/papers?q=world+model",
        "/papers?q=world+model&order=relevance",
        '/papers?q="unbalanced',  # an error page is cached too (briefly)
        "/api/papers",
        "/api/papers?q=diffusion",
        "/papers?date=2026-11-21",
    ],
)
def test_cached_answers_equal_the_first_answer(client: httpx.Client, path: str) -> None:
    first = client.get(path)  # built by the route
    again = client.get(path)  # from the cache, before any routing
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert headers(again) == headers(first)
    if first.status_code == 200:
        not_modified = client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert not_modified.status_code == 304 and not_modified.content == b""


def test_blank_form_equals_the_rendered_form(client: httpx.Client) -> None:
    fast = client.get("/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', fast.text)
    assert token and fast.cookies[COOKIE] == token.group(1)
    again = client.get("/")  # with the cookie now: the same token is kept (tabs keep working)
    assert again.text == fast.text
    # The route renders the same page (a query string skips the fast path).
    rendered = client.get("/?profile=")
    assert rendered.text == fast.text
    assert headers(rendered).keys() == headers(fast).keys()
    assert fast.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in fast.headers["content-security-policy"]


def test_a_forged_cookie_gets_a_fresh_token(client: httpx.Client) -> None:
    page = client.get("/", headers={"Cookie": f"{COOKIE}=forged.value"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token and token.group(1) != "forged.value"
    assert page.cookies[COOKIE] == token.group(1)


def test_static_files_and_misses(client: httpx.Client) -> None:
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["cache-control"] == "public, max-age=3600"
    assert int(css.headers["content-length"]) == len(css.content)
    assert client.get("/static/nope.css").status_code == 404
    assert client.get("/papers?page=x").status_code == 400  # not cached: the route explains


@pytest.mark.parametrize("repeat", [1, 2])  # built by the route, then from the fast path
def test_pages_are_gzipped_for_clients_that_take_it(client: httpx.Client, repeat: int) -> None:
    for _ in range(repeat):
        plain = client.get("/papers", headers={"Accept-Encoding": "identity"})
        packed = client.get("/papers", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert plain.headers["vary"] == packed.headers["vary"] == "Accept-Encoding"
    assert packed.content == plain.content  # httpx decoded it
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert packed.headers["etag"] != plain.headers["etag"]  # one ETag per representation
    again = client.get(
        "/papers", headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["etag"]}
    )
    assert again.status_code == 304
    refused = client.get("/papers", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_head_answers_the_headers_of_get(client: httpx.Client) -> None:
    for path in ("/papers", "/api/papers?q=world+model"):
        for _ in range(2):  # the route, then the fast path
            got = client.get(path)
            head = client.head(path)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["etag"] == got.headers["etag"]
            assert head.headers["content-length"] == got.headers["content-length"]
