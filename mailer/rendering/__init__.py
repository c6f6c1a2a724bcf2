"""Jinja2 environment and email rendering: digests, confirmation and welcome mails (pure).

``Renderer`` compiles every template once (CSS inlined at load time, see ``inlining``) and
renders each paper once for all the digests that list it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup, escape

from mailer.models import Digest, Frequency, Links, Match, Paper, Span, Subscriber
from mailer.rendering.inlining import Inliner, InliningLoader, default_inliner
from mailer.rendering.snippets import (
    SNIPPET_CHARS,
    Segment,
    abstract_ranges,
    clean_spans,
    segments,
    snippet,
    snippet_of,
)
from mailer.rendering.text import labelled_url, numbered, plural, wrap
from mailer.rendering.views import (
    PaperView,
    dedupe,
    group_matches,
    interest_label,
    learned_sections,
    plain_snippet,
    plain_view,
    profile_interests,
    reason_fields,
    safe_url,
    schedule_label,
    shorten_authors,
    title_segments,
)
from mailer.resources import shipped

__all__ = [
    "SNIPPET_CHARS",
    "Group",
    "Inliner",
    "InliningLoader",
    "Listed",
    "PaperParts",
    "PaperView",
    "RenderedEmail",
    "Renderer",
    "Segment",
    "default_inliner",
    "safe_url",
    "segments",
    "shorten_authors",
    "snippet",
]


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered email body: subject, HTML part, plain-text part and the preheader."""

    subject: str
    html: str
    text: str
    preheader: str


@dataclass(frozen=True, slots=True)
class PaperParts:
    """One paper rendered once (HTML and text) and reused in every digest that lists it."""

    html_title: Markup
    html_body: Markup
    text_title: str
    text_body: str


Ranges = tuple[tuple[int, int], ...]
"""The highlighted ``[start, end)`` ranges of one field, cleaned (``snippets.clean_spans``)."""


@dataclass(frozen=True, slots=True)
class _PlainParts:
    """The parts of a paper's block that depend on the paper alone."""

    url: str | None
    html_meta: str
    html_links: str
    text_title: str
    text_meta: str
    text_links: str


def _view(**fields: Any) -> PaperView:
    """A view holding only what one part of a paper's block shows."""
    empty: dict[str, Any] = {
        "title": (), "title_text": "", "url": None, "authors": "", "snippet": (),
        "snippet_text": "", "interests": (), "links": (), "upvotes": None,
    }  # fmt: skip
    return PaperView(**{**empty, **fields})


@dataclass(frozen=True, slots=True)
class Listed:
    """A paper at its place in one digest, with the reader's vote links when it has them."""

    number: int
    parts: PaperParts
    more: str | None = None  # "more like this" URL
    less: str | None = None  # "less like this" URL


@dataclass(frozen=True, slots=True)
class Group:
    """Papers listed under one interest (``label`` is empty when there is a single group)."""

    label: str
    papers: tuple[Listed, ...]


def _preheader(count: int, interests: Sequence[str], weekly: bool) -> str:
    """The inbox preview line: "12 new papers on diffusion policy, world models, …"."""
    noun = "top paper" if weekly else "new paper"
    labels = list(dict.fromkeys(interest_label(i) for i in interests if i.strip() != "*"))
    if not labels:
        trending = any(i.strip() == "*" for i in interests)
        return f"{plural(count, noun)}{', most popular first' if trending else ' for you'}"
    shown = ", ".join(labels[:3]) + (", …" if len(labels) > 3 else "")
    return f"{plural(count, noun)} on {shown}"


def _template_dir_loader() -> jinja2.BaseLoader:
    return jinja2.FileSystemLoader(shipped("templates"))


class Renderer:
    """Renders emails; build one per process: templates are compiled and CSS-inlined once."""

    def __init__(self, inliner: Inliner = default_inliner) -> None:
        inner = _template_dir_loader()
        css, _, _ = inner.get_source(jinja2.Environment(), "email.css")
        css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
        self.env = jinja2.Environment(
            loader=InliningLoader(inner, css, inliner),
            autoescape=lambda name: bool(name and name.endswith(".html.j2")),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,
        )
        self.env.filters.update(
            wrap=wrap, labelled_url=labelled_url, plural=plural, numbered=numbered
        )
        # Compiled (and inlined) here, once: rendering then only runs compiled code.
        self._templates = {
            name.removesuffix(".j2"): self.env.get_template(name) for name in self.template_names()
        }
        html_paper: Any = self._templates["_paper.html"].module
        self._html_paper: Any = html_paper
        self._text_paper: Any = self._templates["_paper.txt"].module
        self._snippet_frame = snippet_frame(html_paper.snippet)
        # Readers matched differently share most of a paper's block: each part is rendered
        # once per run for what it depends on, and a digest only joins them. Bounded (about a
        # KB an entry), so a run over any number of subscribers stays flat in memory. The
        # joined block is not cached: with the highlights in its key, fewer than one lookup
        # in twenty found it in a realistic run, and hashing the paper and its spans for
        # every listed paper cost more than joining the parts again.
        self._plain_parts = lru_cache(maxsize=4096)(self._render_plain)  # the paper
        self._title_html = lru_cache(maxsize=8192)(self._render_title)  # title, url, ranges
        # Snippets differ with the words found, but their text part is not highlighted and
        # many sets of words give the same window of the abstract: it is wrapped once.
        self._snippet = lru_cache(maxsize=8192)(self._render_snippet)  # abstract, ranges
        self._snippet_text = lru_cache(maxsize=8192)(self._render_snippet_text)  # plain text
        self._reason = lru_cache(maxsize=4096)(self._render_reason)  # interests / liked paper

    def clear_caches(self) -> None:
        """Forget every rendered paper part (tests compare against a cold renderer)."""
        caches = (self._plain_parts, self._title_html, self._snippet, self._snippet_text)
        for cache in (*caches, self._reason):
            cache.cache_clear()

    def _paper_parts(
        self,
        paper: Paper,
        interests: tuple[str, ...],
        spans: tuple[Span, ...],
        resembles: str | None = None,
    ) -> PaperParts:
        plain = self._plain_parts(paper)
        title_ranges = tuple(clean_spans(spans, "title", len(paper.title)))
        snippet_html, snippet_plain = self._snippet(
            paper.abstract, abstract_ranges(paper.abstract, spans)
        )
        snippet_text = self._snippet_text(snippet_plain)
        reason_html, reason_text = self._reason(interests, resembles)
        # The order of the blocks in _paper.html.j2 and _paper.txt.j2.
        html_body = plain.html_meta + snippet_html + reason_html + plain.html_links
        text_body = plain.text_meta + reason_text + snippet_text + plain.text_links
        return PaperParts(
            html_title=self._title_html(paper.title, plain.url, title_ranges),
            html_body=Markup(html_body),
            text_title=plain.text_title,
            text_body=text_body.rstrip("\n"),
        )

    # Spelled in ASCII here, once per part, so that a digest's HTML is usually ASCII already
    # and ``_compact`` need not re-encode it.

    def _render_plain(self, paper: Paper) -> _PlainParts:
        view = plain_view(paper)
        return _PlainParts(
            url=view.url,
            html_meta=_html(self._html_paper.meta(view)),
            html_links=_html(self._html_paper.links(view)),
            text_title=str(self._text_paper.title(view)),
            text_meta=str(self._text_paper.meta(view)),
            text_links=str(self._text_paper.links(view)),
        )

    def _render_title(self, title: str, url: str | None, ranges: Ranges) -> Markup:
        view = _view(title=title_segments(title, ranges), url=url)
        return Markup(_ascii(self._html_paper.title(view)))

    def _render_snippet(self, abstract: str, ranges: Ranges) -> tuple[str, str]:
        """The snippet's HTML part, and its plain text for ``_render_snippet_text``."""
        snip = snippet_of(abstract, ranges)
        return self._snippet_html(snip), plain_snippet(snip)

    def _snippet_html(self, snip: Sequence[Segment]) -> str:
        """The ``snippet`` macro's output, written from its frame (see ``snippet_frame``).

        Almost every listed paper of a digest has a snippet of its own (its highlights
        differ between readers), and calling the macro was a quarter of making one.
        """
        frame = self._snippet_frame
        if frame is None or not snip:
            return _html(self._html_paper.snippet(_view(snippet=tuple(snip))))
        head, hit_open, hit_close, tail = frame
        runs = (f"{hit_open}{escape(s.text)}{hit_close}" if s.hit else escape(s.text) for s in snip)
        return _ascii(head + "".join(runs) + tail)

    def _render_snippet_text(self, plain: str) -> str:
        return str(self._text_paper.snippet(_view(snippet_text=plain)))

    def _render_reason(self, interests: tuple[str, ...], resembles: str | None) -> tuple[str, str]:
        view = _view(**reason_fields(interests, resembles))
        return _html(self._html_paper.why(view)), str(self._text_paper.why(view))

    def _groups(self, matches: Sequence[Match], links: Links) -> list[Group]:
        groups, number = [], 0
        sections = learned_sections(matches) if _learned(matches) else group_matches(matches)
        for label, members in sections:
            listed = []
            for match in members:
                number += 1
                parts = self._paper_parts(
                    match.paper, match.interests, match.spans, match.resembles
                )
                votes = links.feedback.get(match.paper.id) if match.paper.id is not None else None
                listed.append(Listed(number, parts, *(_safe_votes(votes))))
            groups.append(Group(label, tuple(listed)))
        return groups

    def template_names(self) -> list[str]:
        """Every email template (``templates/*.j2``; subfolders belong to the web app)."""
        names = self.env.list_templates()
        return [name for name in names if name.endswith(".j2") and "/" not in name]

    def _render(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        html = self._templates[f"{name}.html"].render(context)
        text = self._templates[f"{name}.txt"].render(context)
        return _compact(html), text.rstrip() + "\n"

    def digest(self, digest: Digest, links: Links, *, date_label: str) -> RenderedEmail:
        """The digest email for one subscriber and period."""
        matches = dedupe(digest.matches)
        also = sum(m.resembles is not None for m in matches)
        weekly = digest.period.frequency is Frequency.WEEKLY
        # a paper seen twice in a week is one paper, not one more match
        listed = len(matches) - also  # keyword matches; "also like" papers come on top
        count = max(digest.total_matched - (len(digest.matches) - len(matches)), listed) + also
        interests = [i for m in matches for i in m.interests]
        preheader = _preheader(count, interests, weekly)
        title = "Weekly paper digest" if weekly else "Paper digest"
        noun = "top paper" if weekly else "new paper"
        subject = f"{title} for {date_label}: {plural(count, noun)}"
        context = {
            "title": title,
            "subject": subject,
            "preheader": preheader,
            "date_label": date_label,
            "weekly": weekly,
            "groups": self._groups(matches, links),
            "listed": len(matches),
            "count": count,
            "more": max(0, count - len(matches)),
            "rate": safe_url(links.rate),
            "considered": digest.considered,
            "interests": profile_interests(digest.subscriber.profile),
            "links": _safe_links(links),
        }
        html, text = self._render("digest", context)
        return RenderedEmail(subject=subject, html=html, text=text, preheader=preheader)

    def confirmation(self, confirm_url: str, *, valid_hours: int | None = 48) -> RenderedEmail:
        """The double opt-in email; it carries no user-entered text at all."""
        url = _require_url(confirm_url)
        subject = "Confirm your paper digest subscription"
        preheader = "One click to start receiving your paper digest."
        context = {"subject": subject, "preheader": preheader, "url": url, "hours": valid_hours}
        html, text = self._render("confirm", context)
        return RenderedEmail(subject=subject, html=html, text=text, preheader=preheader)

    def welcome(self, subscriber: Subscriber, links: Links) -> RenderedEmail:
        """The email sent once a subscription is confirmed: what they will get and when."""
        subject = "You are subscribed to the paper digest"
        schedule = schedule_label(subscriber)
        preheader = f"Your first digest arrives {schedule}."
        context = {
            "subject": subject,
            "preheader": preheader,
            "schedule": schedule,
            "weekly": subscriber.frequency == Frequency.WEEKLY,
            "interests": profile_interests(subscriber.profile),
            "links": _safe_links(links),
        }
        html, text = self._render("welcome", context)
        return RenderedEmail(subject=subject, html=html, text=text, preheader=preheader)


_PROBE = (Segment("\x01"), Segment("\x02", hit=True), Segment("\x03"))
"""A snippet of one plain, one highlighted and one plain run, marked by characters that
never occur in the template."""


def snippet_frame(macro: Any) -> tuple[str, str, str, str] | None:
    """What the snippet macro writes around its runs: before, around a highlight, after.

    Read off the template itself by rendering ``_PROBE``, so the inlined styles stay the
    template's. None when the output is not in that shape (the macro is then always used);
    ``tests/test_rendering_shared.py`` compares the result with the macro's.
    """
    out = str(macro(_view(snippet=_PROBE)))
    head, first, rest = out.partition("\x01")
    hit_open, second, rest = rest.partition("\x02")
    hit_close, third, tail = rest.partition("\x03")
    fixed = head + hit_open + hit_close + tail
    if not (first and second and third) or any(c in fixed for c in "\x01\x02\x03"):
        return None
    return head, hit_open, hit_close, tail


def _learned(matches: Sequence[Match]) -> bool:
    """True when the reader's votes ranked this digest (its order is not by interest)."""
    return any(m.learned is not None for m in matches)


def _safe_votes(votes: tuple[str, str] | None) -> tuple[str | None, str | None]:
    if votes is None:
        return None, None
    return _require_url(votes[0]), _require_url(votes[1])


def _require_url(url: str) -> str:
    clean = safe_url(url)
    if clean is None:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return clean


def _safe_links(links: Links) -> dict[str, str | None]:
    return {
        "unsubscribe": _require_url(links.unsubscribe),
        "preferences": _require_url(links.preferences),
        "view_online": _require_url(links.view_online),
        "feed": _require_url(links.feed) if links.feed else None,
    }


# Whitespace with a line break between two tags, unless it is already just that line break:
# most tag pairs are, and substituting them with themselves was most of the pass.
_BETWEEN_TAGS = re.compile(r">(?!\n<)\s*\n\s*<")


def _compact(html: str) -> str:
    """Drop indentation between tags and spell non-ASCII as character references.

    Bytes count against Gmail's 102 KB clipping, and ASCII-only HTML travels as 7bit: no
    quoted-printable growth (every ``=`` in an attribute would otherwise cost three bytes).
    """
    html = _BETWEEN_TAGS.sub(">\n<", html).strip() + "\n"
    return _ascii(html)


def _html(part: Markup) -> str:
    """A rendered part as a plain string, ASCII only: parts are joined as strings, and a
    ``Markup`` would escape the string joined to it."""
    return str(_ascii(part))


def _ascii(html: str) -> str:
    """HTML with every non-ASCII character spelled as a character reference."""
    if html.isascii():
        return html
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")
