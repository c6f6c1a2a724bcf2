"""The digest, confirmation and welcome emails as rendered: content, escaping, size, layout."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser

import jinja2
import pytest

from mailer.mail.message import build_message
from mailer.models import Digest, Frequency, Links, Match, Paper, Span, Subscriber, SubscriberStatus
from mailer.rendering import (
    InliningLoader,
    RenderedEmail,
    Renderer,
    default_inliner,
    shorten_authors,
)
from tests.helpers.golden import assert_golden, sample_digest

GMAIL_CLIP_BYTES = 102 * 1024
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "div", "table", "tbody", "tr"}
ALLOWED_TAGS |= {"td", "p", "a", "b", "br"}


class Tags(HTMLParser):
    """Collects every start tag with its attributes, and the text of <style> elements."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def render_sample(renderer: Renderer, *, weekly: bool = False) -> tuple[str, str, str, str]:
    digest, links = sample_digest(weekly=weekly)
    label = "week 47, 2026" if weekly else "Sun 22 Nov 2026"
    r = renderer.digest(digest, links, date_label=label)
    return r.subject, r.preheader, r.html, r.text


def test_digest_matches_golden_files(renderer: Renderer) -> None:
    subject, preheader, html, text = render_sample(renderer)
    assert subject == "Paper digest for Sun 22 Nov 2026: 5 new papers"
    assert preheader == '5 new papers on diffusion policy, "world model"'
    assert_golden("digest.html", html)
    assert_golden("digest.txt", text)


def test_weekly_digest_matches_golden_files(renderer: Renderer) -> None:
    subject, preheader, html, text = render_sample(renderer, weekly=True)
    assert subject == "Weekly paper digest for week 47, 2026: 5 top papers"
    assert preheader.startswith("5 top papers on ")
    assert "Weekly paper digest" in html
    assert_golden("digest-weekly.html", html)
    assert_golden("digest-weekly.txt", text)


def test_confirmation_and_welcome_match_golden_files(renderer: Renderer) -> None:
    confirm = renderer.confirmation("https://digest.example.org/confirm/CONFIRM.TOKEN")
    digest, links = sample_digest()
    # The welcome email carries no feed link (signup.welcome_message sets none).
    welcome = renderer.welcome(digest.subscriber, dataclasses.replace(links, feed=None))
    assert welcome.preheader == "Your first digest arrives every day at 08:00 (Europe/Paris)."
    assert_golden("confirm.html", confirm.html)
    assert_golden("confirm.txt", confirm.text)
    assert_golden("welcome.html", welcome.html)
    assert_golden("welcome.txt", welcome.text)


def test_hostile_paper_text_is_escaped_in_html_and_intact_in_text(renderer: Renderer) -> None:
    _, _, html, text = render_sample(renderer)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html and "<img" not in html
    assert '&#34;<b class="hl"' in html and "World Models</b>&#34; &amp; $" in html
    assert "$\\mathcal{O}(n^2)$" in html
    assert "O&#39;Brien &#34;Bob&#34; &lt;bob@evil&gt;" in html
    flat = " ".join(text.split())
    assert '<script>alert(1)</script> "World Models" & $\\mathcal{O}(n^2)$ <b>bold</b>' in flat
    assert "<img src=x onerror=alert(1)>" in text
    tags = Tags(html).tags
    assert {tag for tag, _ in tags} <= ALLOWED_TAGS
    assert not [name for _, attrs in tags for name in attrs if name.startswith("on")]
    hrefs = [attrs["href"] or "" for tag, attrs in tags if tag == "a"]
    assert hrefs and all(h.startswith("https://") for h in hrefs)
    assert "javascript:" not in html and "javascript:" not in text


def test_highlights_come_from_spans_and_escape_between_them(renderer: Renderer) -> None:
    _, _, html, _ = render_sample(renderer)
    marks = re.findall(r"<b class=\"hl\"[^>]*>(.*?)</b>", html)
    assert marks.count("diffusion policy") == 2  # both abstract spans in the snippet
    assert "Diffusion Policy" in marks  # the title span
    assert "World Models" in marks and "world model" in marks
    # the text between two spans is escaped, not passed through
    assert "world model</b> &lt;img src=x onerror=alert(1)&gt; in &#39;latent&#39;" in html


def test_per_paper_details(renderer: Renderer) -> None:
    _, _, html, text = render_sample(renderer)
    assert "Cheng Chi, Siyuan Feng, Yilun Du et al." in html
    assert "Zhenjia Xu" not in html
    assert "&#9650; 42" in html and "42 upvotes" in text
    assert "matched: diffusion policy" in html and "matched: &#34;world model&#34;" in html
    for label, url in [
        ("arXiv", "https://arxiv.org/abs/2303.04137"),
        ("PDF", "https://arxiv.org/pdf/2303.04137"),
        ("Hugging Face", "https://huggingface.co/papers/2303.04137"),
        ("Code", "https://github.com/real-stanford/diffusion_policy"),
    ]:
        assert re.search(rf'href="{re.escape(url)}"[^>]*>{label}</a>', html)
        assert f"{label}: {url}" in text
    assert re.search(r'href="https://arxiv.org/abs/2303.04137"[^>]*><b class="hl"', html)
    assert "World models without links" in html  # listed although it has no URL at all


def test_papers_are_grouped_by_interest_and_numbered_in_order(renderer: Renderer) -> None:
    _, _, html, text = render_sample(renderer)
    assert html.index(">diffusion policy</td>") < html.index(">&#34;world model&#34;</td>")
    assert text.index("== diffusion policy ==") < text.index('== "world model" ==')
    numbers = re.findall(r"^(\d+)\. ", text, flags=re.MULTILINE)
    assert numbers == ["1", "2", "3"]
    assert "matched: &#34;world model&#34;, diffusion policy" in html


def test_single_interest_digest_has_no_group_headings(renderer: Renderer) -> None:
    digest, links = sample_digest()
    only = tuple(dataclasses.replace(m, interests=("diffusion policy",)) for m in digest.matches)
    r = renderer.digest(dataclasses.replace(digest, matches=only), links, date_label="today")
    assert "== " not in r.text and 'class="grp"' not in r.html


def test_more_matched_and_footer(renderer: Renderer) -> None:
    _, _, html, text = render_sample(renderer)
    assert "2 more matched" in html and "2 more matched" in text
    flat = " ".join(text.split())
    why = 'You get this because you subscribed to papers on: diffusion policy, "world model".'
    assert why in flat
    for url in ["preferences/PREFS.TOKEN", "unsubscribe/UNSUB.TOKEN", "digest/VIEW.TOKEN"]:
        assert f"https://digest.example.org/{url}" in html
        assert f"https://digest.example.org/{url}" in text
    digest, links = sample_digest()
    exact = dataclasses.replace(digest, total_matched=len(digest.matches))
    r = renderer.digest(exact, links, date_label="today")
    assert "more matched" not in r.html and "more matched" not in r.text


def test_preheader_is_hidden_and_first_in_body(renderer: Renderer) -> None:
    html = render_sample(renderer)[2]
    body = html[html.index("<body") :]
    first_div = re.search(r"<div [^>]*>([^<]*)</div>", body)
    assert first_div is not None
    assert "display:none" in first_div.group(0)
    assert first_div.group(1).startswith("5 new papers on diffusion policy, &#34;world model&#34;")


def test_weekly_digest_lists_each_paper_once(renderer: Renderer) -> None:
    digest, links = sample_digest(weekly=True)
    doubled = dataclasses.replace(digest, matches=digest.matches + digest.matches[:1])
    r = renderer.digest(doubled, links, date_label="week 47")
    assert r.text.count("Diffusion Policy: Visuomotor") == 1


def test_text_part_is_wrapped_at_72_columns(renderer: Renderer) -> None:
    digest, links = big_digest(50)
    long_links = dataclasses.replace(links, unsubscribe="https://example.org/u/" + "T" * 90)
    text = renderer.digest(digest, long_links, date_label="Sun 22 Nov 2026").text
    too_long = [line for line in text.splitlines() if len(line) > 72]
    # only a bare URL that cannot be broken may exceed the width, and then on its own line
    assert too_long == ["https://example.org/u/" + "T" * 90]
    assert max(len(line) for line in render_sample(renderer)[3].splitlines()) <= 72


def big_digest(n: int) -> tuple[Digest, Links]:
    """``n`` papers with long titles, ten authors, every link and 3,000-character abstracts."""
    digest, links = sample_digest()
    words = "representation learning for robotic manipulation with diffusion policy models "
    abstract = (words * 40)[:3000]
    matches = []
    for i in range(n):
        paper = Paper(
            key=f"arxiv:2511.{i:05d}",
            title=f"A rather long title about diffusion policy and world models, part {i} " * 2,
            abstract=abstract,
            authors=tuple(f"Author Number{j} Surname" for j in range(10)),
            url=f"https://arxiv.org/abs/2511.{i:05d}",
            pdf_url=f"https://arxiv.org/pdf/2511.{i:05d}",
            hf_url=f"https://huggingface.co/papers/2511.{i:05d}",
            code_url=f"https://github.com/some-lab/project-{i}",
            upvotes=i,
        )
        spans = tuple(
            Span("abstract", m.start(), m.end()) for m in re.finditer("diffusion policy", abstract)
        )
        interest = ("diffusion policy", '"world model"', "cat:cs.RO")[i % 3]
        matches.append(Match(paper, 1.0, (interest,), ("diffus",), spans))
    return dataclasses.replace(digest, matches=tuple(matches), total_matched=80), links


def _email(rendered: RenderedEmail, links: Links) -> EmailMessage:
    return build_message(
        rendered,
        sender="digest@example.org",
        recipient="alice@example.com",
        message_id="<x@example.org>",
        links=links,
        list_id="Paper digest <digest.example.org>",
        when=datetime(2026, 11, 22, tzinfo=UTC),
    )


def test_fifty_long_papers_stay_under_gmail_clipping(renderer: Renderer) -> None:
    digest, links = big_digest(50)
    rendered = renderer.digest(digest, links, date_label="Sun 22 Nov 2026")
    assert len(rendered.html.encode()) < GMAIL_CLIP_BYTES
    html_part = _email(rendered, links).get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    assert len(html_part.get_payload().encode()) < GMAIL_CLIP_BYTES  # as transferred (QP)
    assert rendered.html.count('class="p"') == 50
    assert rendered.text.count("[...]") == 0 and " ..." in rendered.text  # snippets, not abstracts
    assert len(rendered.html) < 50 * 3000  # the abstracts are not included whole


def test_css_is_inlined_once_per_template_not_per_message() -> None:
    calls: list[str] = []

    def counting(source: str, css: str) -> str:
        calls.append(source[:40])
        return default_inliner(source, css)

    renderer = Renderer(inliner=counting)
    after_init = len(calls)
    assert renderer.template_names() == [
        "_footer.html.j2", "_layout.html.j2", "_paper.html.j2", "_paper.txt.j2",
        "confirm.html.j2", "confirm.txt.j2", "digest.html.j2", "digest.txt.j2",
        "welcome.html.j2", "welcome.txt.j2",
    ]  # fmt: skip
    assert after_init == 6  # each HTML template once, when the renderer is built
    digest, links = sample_digest()
    for _ in range(1000):
        renderer.digest(digest, links, date_label="Sun 22 Nov 2026")
    renderer.confirmation("https://digest.example.org/confirm/T")
    assert len(calls) == after_init


def test_layout_does_not_depend_on_a_style_element(renderer: Renderer) -> None:
    for html in (render_sample(renderer)[2], renderer.confirmation("https://x.org/c/T").html):
        parsed = Tags(html)
        styled = [attrs for _, attrs in parsed.tags if attrs.get("class")]
        assert styled and all(attrs.get("style") for attrs in styled)
        # what stays in <style> is only what cannot be inlined: media queries
        rest = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", "".join(parsed.styles))
        assert rest.strip() == ""
        assert "prefers-color-scheme: dark" in "".join(parsed.styles)
        assert '<meta name="color-scheme" content="light dark">' in html
        assert 'name="viewport"' in html and "max-width:600px" in html
        assert not [attrs for _, attrs in parsed.tags if "src" in attrs]
        assert not [tag for tag, _ in parsed.tags if tag in ("img", "link", "script")]
        for external in ("@import", "url(", "@font-face"):
            assert external not in html


def test_confirmation_carries_no_user_text(renderer: Renderer) -> None:
    r = renderer.confirmation("https://digest.example.org/confirm/TOKEN-1", valid_hours=48)
    assert r.subject == "Confirm your paper digest subscription"
    assert 'href="https://digest.example.org/confirm/TOKEN-1"' in r.html
    assert "https://digest.example.org/confirm/TOKEN-1" in r.text
    assert "48 hours" in r.text
    with pytest.raises(ValueError, match="http"):
        renderer.confirmation("javascript:alert(1)")


def test_welcome_tells_when_digests_arrive(renderer: Renderer) -> None:
    subscriber = Subscriber(
        1, "bob@example.org", SubscriberStatus.ACTIVE, "cat:cs.RO\n<b>x</b>", Frequency.WEEKLY,
        "07:30", "Asia/Tokyo", weekday=2,
    )  # fmt: skip
    _, links = sample_digest()
    r = renderer.welcome(subscriber, links)
    assert "every Wednesday at 07:30 (Asia/Tokyo)" in r.text
    assert "weekly" in r.html and "cat:cs.RO, &lt;b&gt;x&lt;/b&gt;" in r.html


def test_authors_are_shortened() -> None:
    assert shorten_authors(["A", "B", "C"]) == "A, B, C"
    assert shorten_authors(["A", "B", "C", "D"]) == "A, B, C et al."
    assert shorten_authors([" Jane   Doe ", ""]) == "Jane Doe"
    assert shorten_authors([]) == ""


def test_inlining_loader_refuses_templates_whose_tags_the_parser_moves() -> None:
    # text directly inside a table is moved before it by HTML parsers ("foster parenting")
    source = "<table><tbody>{% for r in rows %}<tr><td>{{ r }}</td></tr>{% endfor %}{{ x }}"
    source += "</tbody></table>"
    loader = InliningLoader(
        jinja2.DictLoader({"bad.html.j2": source}), "td{color:red}", default_inliner
    )
    env = jinja2.Environment(loader=loader, autoescape=True)
    with pytest.raises(jinja2.TemplateError, match="moved Jinja tags"):
        env.get_template("bad.html.j2")


def test_each_paper_is_rendered_once_for_all_digests_listing_it() -> None:
    renderer = Renderer()
    digest, links = sample_digest()
    caches = (renderer._plain_parts, renderer._title_html, renderer._snippet, renderer._reason)
    renderer.digest(digest, links, date_label="today")
    first = [cache.cache_info().misses for cache in caches]
    for _ in range(99):
        renderer.digest(digest, links, date_label="today")
    rescored = tuple(dataclasses.replace(m, score=m.score + 1, terms=()) for m in digest.matches)
    renderer.digest(dataclasses.replace(digest, matches=rescored), links, date_label="today")
    # Nothing rendered again after the first digest: the score and terms are not shown.
    assert [cache.cache_info().misses for cache in caches] == first
    assert renderer._plain_parts.cache_info().misses == len(digest.matches)
    assert all(cache.cache_info().hits >= 100 * len(digest.matches) for cache in caches[:3])


def test_trending_profile_preheader_and_duplicate_count(renderer: Renderer) -> None:
    digest, links = sample_digest(weekly=True)
    trending = tuple(dataclasses.replace(m, interests=("*",)) for m in digest.matches)
    doubled = dataclasses.replace(
        digest, matches=trending + trending[:1], total_matched=len(trending) + 1
    )
    r = renderer.digest(doubled, links, date_label="week 47")
    assert r.preheader == "3 top papers, most popular first"
    assert "more matched" not in r.text  # the duplicate is not "one more"
    assert "matched: all papers (trending)" in r.text


def _text_part(renderer: Renderer, digest: Digest, links: Links) -> tuple[str, str]:
    rendered = renderer.digest(digest, links, date_label="Sun 22 Nov 2026")
    part = _email(rendered, links).get_body(("plain",))
    assert part is not None and rendered.html
    return rendered.text, str(part["Content-Transfer-Encoding"])


def test_text_part_of_ascii_papers_is_ascii_and_travels_as_7bit(renderer: Renderer) -> None:
    digest, links = sample_digest()  # one paper's authors are not ASCII: quoted-printable
    text, encoding = _text_part(renderer, digest, links)
    assert "Zo\u00eb \u00dcn\u00efcode" in text and encoding == "quoted-printable"
    ascii_only = tuple(
        dataclasses.replace(m, paper=dataclasses.replace(m.paper, authors=("Zoe Unicode",)))
        if not m.paper.title.isascii() or not "".join(m.paper.authors).isascii()
        else m
        for m in digest.matches
    )
    text, encoding = _text_part(renderer, dataclasses.replace(digest, matches=ascii_only), links)
    assert text.isascii() and encoding == "7bit"
    assert "\n    ... We introduce" in text and "diffusion policy ...\n" in text


def test_html_snippets_keep_their_typographic_ellipsis(renderer: Renderer) -> None:
    _, _, html, _ = render_sample(renderer)
    assert "&#8230; We introduce" in html and "..." not in html
