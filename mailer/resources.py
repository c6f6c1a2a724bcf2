"""Where the shipped ``templates/`` and ``migrations/`` folders are, installed or in a checkout.

They sit at the top of the repository, where the design card puts them, and the wheel carries
them inside the package (``mailer/templates``, ``mailer/migrations``; see ``pyproject.toml``).
An editable install or a plain checkout finds them beside the package instead.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from mailer.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


@cache
def shipped(name: str) -> Path:
    """The folder ``name`` (``templates`` or ``migrations``): in the wheel, else in the checkout."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"the {name}/ folder is missing from this installation of mailer")
