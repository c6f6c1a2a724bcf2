"""Hugging Face Daily Papers: a pure ``parse`` of the API's JSON and a thin async fetch.

The endpoint (``MAILER_HF_API_URL?date=YYYY-MM-DD``) answers a JSON array of items, each with a
``paper`` object (``id`` = arXiv id, ``title``, ``summary``, ``authors[]`` with ``name`` and
``hidden``, ``publishedAt``, ``submittedOnDailyAt``, ``upvotes``, ``ai_keywords``, ``githubRepo``,
``projectPage``) next to item-level ``title``, ``summary``, ``thumbnail`` and ``numComments``.
The identity of a paper is its arXiv id without version.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from functools import partial
from typing import Any

import httpx

from mailer.errors import PayloadError
from mailer.models import Paper
from mailer.sources import fields
from mailer.sources.base import FetchResult, ParseResult, Validators
from mailer.sources.batch import DEFAULT_MAX_ITEMS, Batch
from mailer.sources.calendar import catch_up_days
from mailer.sources.http import (
    DEFAULT_POLICY,
    NO_VALIDATORS,
    HttpPolicy,
    conditional_get,
    require_content_type,
)
from mailer.sources.identity import arxiv_links, normalise_arxiv_id

KIND = "hf-daily"
HF_PAPER_PAGE = "https://huggingface.co/papers/"


def _authors(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    visible = [a for a in value if isinstance(a, dict) and not a.get("hidden")]
    return fields.string_list(visible)


def parse_item(item: Any, source: str = KIND) -> Paper:
    """One daily-papers item as a Paper; ValueError with a short reason when unusable."""
    if not isinstance(item, dict):
        raise ValueError("not an object")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise ValueError("no paper object")
    raw_id = paper.get("id")
    arxiv_id = normalise_arxiv_id(raw_id) if isinstance(raw_id, str) else None
    if arxiv_id is None:
        shown = raw_id[:40] if isinstance(raw_id, str) else raw_id
        raise ValueError(f"no arXiv id ({shown!r})")
    title = fields.text(paper.get("title")) or fields.text(item.get("title"))
    if not title:
        raise ValueError(f"{arxiv_id}: no title")
    abs_url, pdf_url = arxiv_links(arxiv_id)
    return Paper(
        key=arxiv_id,
        arxiv_id=arxiv_id,
        title=title,
        abstract=fields.text(paper.get("summary")) or fields.text(item.get("summary")),
        authors=_authors(paper.get("authors")),
        keywords=fields.string_list(paper.get("ai_keywords")),
        url=abs_url,
        pdf_url=pdf_url,
        hf_url=HF_PAPER_PAGE + arxiv_id,
        code_url=fields.optional_text(paper.get("githubRepo")),
        project_url=fields.optional_text(paper.get("projectPage")),
        thumbnail_url=fields.optional_text(item.get("thumbnail")),
        published=fields.optional_date(paper.get("publishedAt") or item.get("publishedAt")),
        upvotes=fields.count(paper.get("upvotes"), "upvotes"),
        comments=fields.count(item.get("numComments"), "comments"),
        source=source,
    )


def parse(data: bytes, source: str = KIND, max_items: int = DEFAULT_MAX_ITEMS) -> ParseResult:
    """Parse a daily-papers JSON array; malformed items are skipped with a reason."""
    document = fields.load_json(data, source)
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        raise PayloadError(f"{source}: the API answered an error: {document['error'][:200]}")
    if not isinstance(document, fields.JsonArray):
        raise PayloadError(f"{source}: expected a JSON array, got {type(document).__name__}")
    batch = Batch(max_items)
    for index, item in enumerate(document, start=1):
        batch.add(f"item {index}", partial(parse_item, item, source))
    return batch.result()


class HfDailySource:
    """The Hugging Face Daily Papers list of one day."""

    kind = KIND

    def __init__(self, api_url: str, policy: HttpPolicy = DEFAULT_POLICY) -> None:
        self.api_url = api_url
        self.policy = policy
        self.name = KIND

    async def fetch(
        self, client: httpx.AsyncClient, validators: Validators, day: date
    ) -> FetchResult:
        """Fetch the list for ``day`` (conditional GET with ``validators``)."""
        response = await conditional_get(
            client,
            self.api_url,
            name=self.name,
            validators=validators,
            policy=self.policy,
            params={"date": day.isoformat()},
            accept="application/json",
        )
        if response.not_modified:
            return FetchResult(not_modified=True, validators=response.validators, day=day)
        require_content_type(response, self.name, ("json",))
        parsed = parse(response.body, self.name, self.policy.limits.max_items)
        return FetchResult.from_parse(parsed, response.validators, day)

    async def fetch_since(
        self, client: httpx.AsyncClient, validators: Validators, day: date, since: date | None
    ) -> AsyncIterator[FetchResult]:
        """Catch up: one result per day after ``since`` up to ``day`` (at most 7), oldest first.

        Validators describe the last response, so only the newest day is fetched conditionally.
        """
        for wanted in catch_up_days(since, day):
            yield await self.fetch(client, validators if wanted == day else NO_VALIDATORS, wanted)
