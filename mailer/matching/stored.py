"""A profile's stored compiled form: the parsed profile beside the text it was parsed from.

Kept in ``subscriber.profile_compiled`` so planning loads a profile instead of parsing it,
and never trusts a form made from another text (the profile was changed since).
"""

from __future__ import annotations

import json

from mailer.errors import ProfileError
from mailer.matching.profile import Profile


def stored_form(text: str, profile: Profile) -> str:
    """What to store for ``profile``, parsed from ``text``."""
    return json.dumps({"text": text, "profile": profile.to_json()})


def load_stored(compiled: str | None, text: str) -> Profile | None:
    """The stored profile when ``compiled`` is a readable form made from ``text``, else None."""
    if not compiled:
        return None
    try:
        data = json.loads(compiled)
        if data.get("text") != text:
            return None
        return Profile.from_json(data["profile"])
    except (ValueError, KeyError, TypeError, AttributeError, ProfileError):
        return None
