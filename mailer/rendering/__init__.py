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
from markupsafe import Markup

from mailer.models import Digest, Frequency, Links, Match, Paper, Span, Subscriber
from mailer.rendering.inlining import Inliner, InliningLoader, default_inliner
from mailer.rendering.snippets import SNIPPET_CHARS, Segment, segments, snippet
from mailer.rendering.text import labelled_url, numbered, plural, wrap
from mailer.rendering.views import (
    PaperView,
    dedupe,
    group_matches,
    interest_label,
    learned_sections,
    paper_view,
    profile_interests,
    safe_url,
    schedule_label,
    shorten_authors,
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
        self._html_paper: Any = self._templates["_paper.html"].module
        self._text_paper: Any = self._templates["_paper.txt"].module
        # A paper matched the same way reads the same in every digest: render it once. The key
        # leaves out the score and terms, which differ between subscribers but are not shown.
        self.paper_parts = lru_cache(maxsize=4096)(self._paper_parts)

    def _paper_parts(
        self,
        paper: Paper,
        interests: tuple[str, ...],
        spans: tuple[Span, ...],
        resembles: str | None = None,
    ) -> PaperParts:
        view = paper_view(Match(paper, 0.0, interests, (), spans, resembles=resembles))
        # Spelled in ASCII here, once per paper, so that a digest's HTML is usually ASCII
        # already and ``_compact`` need not re-encode it.
        return PaperParts(
            html_title=Markup(_ascii(self._html_paper.title(view))),
            html_body=Markup(_ascii(self._html_paper.body(view))),
            text_title=str(self._text_paper.title(view)),
            text_body=str(self._text_paper.body(view)).rstrip("\n"),
        )

    def _groups(self, matches: Sequence[Match], links: Links) -> list[Group]:
        groups, number = [], 0
        sections = learned_sections(matches) if _learned(matches) else group_matches(matches)
        for label, members in sections:
            listed = []
            for match in members:
                number += 1
                parts = self.paper_parts(match.paper, match.interests, match.spans, match.resembles)
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


def _ascii(html: str) -> str:
    """HTML with every non-ASCII character spelled as a character reference."""
    if html.isascii():
        return html
    return html.encode("ascii", "xmlcharrefreplace").decode("ascii")
