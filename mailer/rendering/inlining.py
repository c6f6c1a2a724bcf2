"""CSS inlining at template load time: a Jinja loader that inlines each HTML template once."""

from __future__ import annotations

import re
from collections.abc import Callable

import css_inline
import jinja2

Inliner = Callable[[str, str], str]

"""Inlines CSS (second argument) into an HTML template source (first argument)."""


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
