"""The Jinja2 environment for the web pages and the lists their forms offer."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailer.resources import shipped
from mailer.schedule import WEEKDAYS, is_valid_timezone

_LEGACY_PREFIXES = ("Etc/", "SystemV/", "US/", "Canada/", "Brazil/", "Chile/", "Mexico/")


@lru_cache(maxsize=1)
def timezone_choices() -> tuple[str, ...]:
    """IANA zones worth offering in a list: UTC first, then Area/City names, sorted."""
    from zoneinfo import available_timezones

    zones = sorted(
        name
        for name in available_timezones()
        if "/" in name and not name.startswith(_LEGACY_PREFIXES) and is_valid_timezone(name)
    )
    return ("UTC", *zones)


def weekday_choices() -> list[tuple[int, str]]:
    """(number, name) pairs, Monday first."""
    return [(number, name.capitalize()) for number, name in enumerate(WEEKDAYS)]


class Pages:
    """Renders the page templates under ``templates/web/``."""

    def __init__(self, *, demo: bool = False) -> None:
        self.env = Environment(
            loader=FileSystemLoader(shipped("templates")),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(demo=demo, weekdays=weekday_choices())

    def html(self, name: str, **context: Any) -> str:
        """The rendered template ``web/<name>.html.j2``."""
        return self.env.get_template(f"web/{name}.html.j2").render(context)

    def response(
        self, name: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
    ) -> Response:
        """An HTML response for a page template."""
        return HTMLResponse(self.html(name, **context), status_code=status, headers=headers)

    def message(self, title: str, text: str, status: int = 200, **extra: Any) -> Response:
        """A short page with a heading and one paragraph (errors, confirmations)."""
        context: dict[str, Any] = {"link": None, "link_text": "", **extra}
        return self.response("message", status, title=title, text=text, **context)
