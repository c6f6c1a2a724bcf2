"""The preferences page's "what your digest learned" part: examples, top terms, seeding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request

from mailer.context import Context
from mailer.db.feedback import StoredExample
from mailer.pipeline.learning import Taste, reader_taste
from mailer.relevance.library import MAX_BYTES
from mailer.rendering.views import safe_url
from mailer.subscribers import feedback
from mailer.web.forms import FormError

SHOWN = 100  # examples listed per kind; the count says how many more there are


@dataclass(frozen=True, slots=True)
class Examples:
    """A reader's examples as the page lists them."""

    liked: list[dict[str, Any]]
    disliked: list[dict[str, Any]]
    liked_total: int
    disliked_total: int
    taste: Taste
    # The ranking compares meanings with a sentence-embedding model (MAILER_RELEVANCE_MODEL),
    # which names no words: the page says the words are the word-based reading of the examples.
    by_meaning: bool = False


def _view(example: StoredExample) -> dict[str, Any]:
    return {
        "id": example.id,
        "title": example.title,
        "url": safe_url(example.url),
        "seeded": example.origin == "seed",
    }


def examples_context(ctx: Context, subscriber_id: int) -> Examples:
    """The reader's liked and disliked examples (newest first) and the model's top terms."""
    found = feedback.examples(ctx.session_factory, subscriber_id)
    liked = [e for e in found if e.vote > 0]
    disliked = [e for e in found if e.vote < 0]
    taste = reader_taste(ctx.session_factory, subscriber_id) if found else Taste((), ())
    return Examples(
        [_view(e) for e in liked[:SHOWN]],
        [_view(e) for e in disliked[:SHOWN]],
        len(liked),
        len(disliked),
        taste,
        by_meaning=ctx.relevance_model is not None,
    )


async def read_upload(request: Request) -> bytes:
    """The uploaded library file's bytes (one file, bounded); FormError otherwise."""
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception as exc:  # starlette raises HTTPException or MultiPartException subclasses
        raise FormError(f"the upload could not be read: {exc}") from None
    upload = form.get("library")
    if not isinstance(upload, UploadFile):
        raise FormError("choose a file to upload (BibTeX, RIS, CSL-JSON or a list of arXiv ids)")
    data = await upload.read(MAX_BYTES + 1)
    await form.close()
    if not data:
        raise FormError("the file is empty")
    return data
