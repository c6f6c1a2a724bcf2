"""Jinja2 environment and email rendering: digests, confirmation and welcome mails (pure)."""

from __future__ import annotations

import re
import textwrap
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import css_inline
import jinja2
from markupsafe import Markup

from mailer.models import Digest, Frequency, Links, Match, Paper, Span, Subscriber

TEXT_WIDTH = 72
SNIPPET_CHARS = 300
MAX_AUTHORS = 3
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SAFE_URL = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)

Inliner = Callable[[str, str], str]
"""Inlines CSS (second argument) into an HTML template source (first argument)."""


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A rendered email body: subject, HTML part, plain-text part and the preheader."""

    subject: str
    html: str
    text: str
    preheader: str


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of text; ``hit`` marks matched words to highlight."""

    text: str
    hit: bool = False


@dataclass(frozen=True, slots=True)
class PaperView:
    """One paper as the templates show it: all values plain text, escaped by the template."""

    title: tuple[Segment, ...]
    title_text: str
    url: str | None
    authors: str
    snippet: tuple[Segment, ...]
    snippet_text: str
    interests: tuple[str, ...]
    links: tuple[tuple[str, str], ...]
    upvotes: int | None


@dataclass(frozen=True, slots=True)
class PaperParts:
    """One paper rendered once (HTML and text) and reused in every digest that lists it."""

    html_title: Markup
    html_body: Markup
    text_title: str
    text_body: str


@dataclass(frozen=True, slots=True)
class Listed:
    """A paper at its place in one digest."""

    number: int
    parts: PaperParts


@dataclass(frozen=True, slots=True)
class Group:
    """Papers listed under one interest (``label`` is empty when there is a single group)."""

    label: str
    papers: tuple[Listed, ...]


def default_inliner(source: str, css: str) -> str:
    """Inline ``css`` into a template source with css-inline, keeping @media rules in <style>."""
    inliner = css_inline.CSSInliner(keep_at_rules=True, minify_css=True, extra_css=css)
    if "<html" in source:
        return str(inliner.inline(source))
    return str(inliner.inline_fragment(source, css))


class InliningLoader(jinja2.BaseLoader):
    """Loads templates and inlines CSS into HTML templates once, when Jinja first compiles them.

    Jinja tags are swapped for placeholders the HTML parser leaves in place (statements become
    comments, expressions become private-use characters) and swapped back afterwards. Templates
    must therefore keep statements between elements and expressions in text or attribute values,
    and spell out ``<tbody>`` in tables that loop over rows.
    """

    _TAG = re.compile(r"\{%.*?%\}|\{#.*?#\}|\{\{.*?\}\}", re.DOTALL)

    def __init__(self, inner: jinja2.BaseLoader, css: str, inliner: Inliner) -> None:
        self.inner = inner
        self.css = css
        self.inliner = inliner

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        """Return the template source, CSS-inlined for ``*.html.j2`` templates."""
        source, filename, uptodate = self.inner.get_source(environment, template)
        if template.endswith(".html.j2"):
            source = self._inline(template, source)
        return source, filename, uptodate

    def list_templates(self) -> list[str]:
        """The wrapped loader's templates."""
        return self.inner.list_templates()

    def _inline(self, name: str, source: str) -> str:
        tags: list[str] = []

        def hide(match: re.Match[str]) -> str:
            tags.append(match.group(0))
            marker = f"\ue000{len(tags) - 1}\ue001"
            return marker if match.group(0).startswith("{{") else f"<!--{marker}-->"

        html = self.inliner(self._TAG.sub(hide, source), self.css)
        found = [int(n) for n in re.findall("\ue000(\\d+)\ue001", html)]
        if found != list(range(len(tags))):
            raise jinja2.TemplateError(
                f"{name}: the HTML parser moved Jinja tags; see InliningLoader"
            )
        html = re.sub("<!--\ue000(\\d+)\ue001-->", lambda m: tags[int(m.group(1))], html)
        return re.sub("\ue000(\\d+)\ue001", lambda m: tags[int(m.group(1))], html)


def safe_url(url: str | None) -> str | None:
    """The URL if it is an absolute http(s) URL, else None (never link ``javascript:``)."""
    if url and _SAFE_URL.match(url.strip()):
        return url.strip()
    return None


def shorten_authors(authors: Sequence[str]) -> str:
    """The first three authors, then "et al." when there are more."""
    names = [" ".join(a.split()) for a in authors if a.strip()]
    if len(names) <= MAX_AUTHORS:
        return ", ".join(names)
    return ", ".join(names[:MAX_AUTHORS]) + " et al."


def _clean_spans(spans: Iterable[Span], field: str, length: int) -> list[tuple[int, int]]:
    """Spans of one field, clipped to the text, without empty ones, sorted and merged."""
    ranges = sorted(
        (max(0, s.start), min(length, s.end)) for s in spans if s.field == field and s.end > s.start
    )
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def segments(text: str, spans: Sequence[tuple[int, int]], start: int, end: int) -> list[Segment]:
    """Split ``text[start:end]`` into plain and highlighted runs, whitespace collapsed."""
    out: list[Segment] = []
    pos = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e:
            continue
        out += [Segment(text[pos:s]), Segment(text[s:e], hit=True)]
        pos = e
    out.append(Segment(text[pos:end]))
    return _tidy(out)


def _tidy(runs: Iterable[Segment]) -> list[Segment]:
    """Collapse whitespace across runs, keep it outside highlights, merge adjacent plain runs."""
    out: list[Segment] = []
    for run in runs:
        text = re.sub(r"\s+", " ", run.text)
        if out and out[-1].text.endswith(" "):
            text = text.lstrip(" ")
        core = text.strip(" ")
        pieces = [Segment(text[: text.find(core)] if core else text)]
        if core and run.hit:
            pieces += [Segment(core, hit=True), Segment(text[text.find(core) + len(core) :])]
        elif core:
            pieces = [Segment(text)]
        for piece in pieces:
            if not piece.text:
                continue
            if out and not out[-1].hit and not piece.hit:
                out[-1] = Segment(out[-1].text + piece.text)
            else:
                out.append(piece)
    return out


def _window(text: str, spans: Sequence[tuple[int, int]], width: int) -> tuple[int, int]:
    """The ``width``-character window holding the most highlighted spans, on word boundaries."""
    if len(text) <= width:
        return 0, len(text)
    lead = width // 5
    starts, ends = [s for s, _ in spans], [e for _, e in spans]
    best, best_count, first = 0, -1, 0
    for i, (anchor, _) in enumerate(spans):
        start = max(0, anchor - lead)
        # spans are sorted and disjoint: those inside [start, start + width) are contiguous
        count = bisect_right(ends, start + width) - bisect_left(starts, start)
        if count > best_count:
            best, best_count, first = start, count, i
    start, end = best, min(len(text), best + width)
    if start > 0:
        sentence = text.rfind(". ", start, spans[first][0]) if spans else -1
        space = text.find(" ", start)
        start = sentence + 2 if sentence >= 0 else (space + 1 if 0 <= space < end else start)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    return start, end


def snippet(text: str, spans: Iterable[Span], width: int = SNIPPET_CHARS) -> list[Segment]:
    """About ``width`` characters of ``text`` around the matched words, highlighted."""
    text = text.rstrip()
    ranges = _clean_spans(spans, "abstract", len(text))
    start, end = _window(text, ranges, width)
    out = segments(text, ranges, start, end)
    if out and start > 0:
        out.insert(0, Segment("… "))
    if out and end < len(text):
        out.append(Segment(" …"))
    return out


def interest_label(interest: str) -> str:
    """How an interest is named in the email ("*" is the trending digest)."""
    return "all papers (trending)" if interest.strip() == "*" else interest.strip()


def paper_links(paper: Paper) -> tuple[tuple[str, str], ...]:
    """The (label, url) links shown under a paper, only those known and safe."""
    abs_label = "arXiv" if paper.url and "arxiv.org" in paper.url else "Abstract"
    candidates = [
        (abs_label, paper.url),
        ("PDF", paper.pdf_url),
        ("Hugging Face", paper.hf_url),
        ("Code", paper.code_url),
        ("Project", paper.project_url),
    ]
    seen: set[str] = set()
    links = []
    for label, url in candidates:
        clean = safe_url(url)
        if clean and clean not in seen:
            seen.add(clean)
            links.append((label, clean))
    return tuple(links)


def paper_view(match: Match) -> PaperView:
    """The template-facing view of one matched paper."""
    paper = match.paper
    title = " ".join(paper.title.split())
    title_spans = _clean_spans(match.spans, "title", len(paper.title))
    snip = snippet(paper.abstract, match.spans)
    url = safe_url(paper.url) or safe_url(paper.hf_url) or safe_url(paper.pdf_url)
    return PaperView(
        title=tuple(segments(paper.title, title_spans, 0, len(paper.title))),
        title_text=title,
        url=url,
        authors=shorten_authors(paper.authors),
        snippet=tuple(snip),
        snippet_text="".join(s.text for s in snip),
        interests=tuple(interest_label(i) for i in match.interests),
        links=paper_links(paper),
        upvotes=paper.upvotes,
    )


def dedupe(matches: Iterable[Match]) -> list[Match]:
    """Matches with each paper once (a weekly digest may see a paper on several days)."""
    seen: set[str] = set()
    unique = []
    for match in matches:
        if match.paper.key not in seen:
            seen.add(match.paper.key)
            unique.append(match)
    return unique


def group_matches(matches: Sequence[Match]) -> list[tuple[str, list[Match]]]:
    """Matches grouped by their first interest, groups in rank order; one unnamed group if all
    share an interest."""
    order: dict[str, list[Match]] = {}
    for match in matches:
        order.setdefault(match.interests[0] if match.interests else "", []).append(match)
    if len(order) == 1:
        return [("", list(matches))]
    return [(interest_label(interest), members) for interest, members in order.items()]


def profile_interests(profile: str) -> list[str]:
    """The profile's interests as written, without exclusions, for "why you get this"."""
    parts = (part.strip() for part in re.split(r"[,\n]", profile))
    return [part for part in parts if part and not part.startswith("-")]


def wrap(text: str, indent: str = "", first: str | None = None, width: int = TEXT_WIDTH) -> str:
    """Wrap plain text at ``width`` columns; ``first`` prefixes the first line instead of indent."""
    return textwrap.fill(
        " ".join(text.split()),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def labelled_url(label: str, url: str, indent: str = "", width: int = TEXT_WIDTH) -> str:
    """``label url`` on one line when it fits, else the URL alone on the next line."""
    line = f"{indent}{label} {url}"
    if len(line) <= width:
        return line
    return f"{indent}{label}\n{url}"


def numbered(wrapped: str, number: int) -> str:
    """A paper's wrapped title (indented by 4) with its number in the margin: ``12. Title``."""
    prefix = f"{number}. "
    if len(prefix) <= 4:
        return prefix.ljust(4) + wrapped[4:]
    return wrap(wrapped, "    ", prefix)


def plural(count: int, word: str) -> str:
    """``1 paper`` / ``2 papers``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def _preheader(count: int, interests: Sequence[str], weekly: bool) -> str:
    """The inbox preview line: "12 new papers on diffusion policy, world models, …"."""
    noun = "top paper" if weekly else "new paper"
    labels = list(dict.fromkeys(interest_label(i) for i in interests))
    if not labels:
        return f"{plural(count, noun)} for you"
    shown = ", ".join(labels[:3]) + (", …" if len(labels) > 3 else "")
    return f"{plural(count, noun)} on {shown}"


def schedule_label(subscriber: Subscriber) -> str:
    """When the subscriber's digest arrives, e.g. "every Monday at 08:00 (Europe/Paris)"."""
    day = (
        f"every {_WEEKDAYS[subscriber.weekday % 7]}"
        if subscriber.frequency == Frequency.WEEKLY
        else "every day"
    )
    return f"{day} at {subscriber.send_time} ({subscriber.timezone})"


def _template_dir_loader() -> jinja2.BaseLoader:
    return jinja2.FileSystemLoader(str(resources.files("mailer") / "templates"))


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
        # A paper matched the same way reads the same in every digest: render it once.
        self.paper_parts = lru_cache(maxsize=4096)(self._paper_parts)

    def _paper_parts(self, match: Match) -> PaperParts:
        view = paper_view(match)
        return PaperParts(
            html_title=self._html_paper.title(view),
            html_body=self._html_paper.body(view),
            text_title=str(self._text_paper.title(view)),
            text_body=str(self._text_paper.body(view)).rstrip("\n"),
        )

    def _groups(self, matches: Sequence[Match]) -> list[Group]:
        groups, number = [], 0
        for label, members in group_matches(matches):
            listed = []
            for match in members:
                number += 1
                listed.append(Listed(number, self.paper_parts(match)))
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
        weekly = "-W" in digest.period or digest.subscriber.frequency == Frequency.WEEKLY
        count = max(digest.total_matched, len(matches))
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
            "groups": self._groups(matches),
            "listed": len(matches),
            "count": count,
            "more": max(0, count - len(matches)),
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


def _require_url(url: str) -> str:
    clean = safe_url(url)
    if clean is None:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return clean


def _safe_links(links: Links) -> dict[str, str]:
    return {
        "unsubscribe": _require_url(links.unsubscribe),
        "preferences": _require_url(links.preferences),
        "view_online": _require_url(links.view_online),
    }


def _compact(html: str) -> str:
    """Drop indentation and blank lines between tags: bytes count against Gmail's 102 KB."""
    return re.sub(r">\s*\n\s*<", ">\n<", html).strip() + "\n"
