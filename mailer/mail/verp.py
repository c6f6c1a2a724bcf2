"""Per-digest envelope senders (VERP): ``bounces+TAG@example.org``, the tag signed per digest.

A bounce goes back to the envelope sender, and feedback loops quote it (``Return-Path``,
``Original-Mail-From``): finding a valid tag in a report proves which digest it is about,
which nothing else in a report can (anyone can write a Message-ID or an address into a mail).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailer.errors import ConfigError
from mailer.tokens import Tokens

_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


@dataclass(frozen=True)
class ReturnPath:
    """Makes the envelope sender of each digest and finds the digests a report names."""

    local: str
    domain: str
    tokens: Tokens = field(repr=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The tag is looked for anywhere in a report: MTAs put the envelope sender in
        # Delivered-To, X-Original-To, To or the returned headers, each in its own way.
        tag = rf"{re.escape(self.local)}\+(\d{{1,19}}-[0-9a-f]{{20}})@{re.escape(self.domain)}"
        object.__setattr__(self, "_pattern", re.compile(tag, re.IGNORECASE))

    @classmethod
    def parse(cls, address: str, tokens: Tokens) -> ReturnPath:
        """From ``MAILER_BOUNCE_ADDRESS`` (a plain ``local@domain``); ConfigError otherwise."""
        local, at, domain = address.strip().rpartition("@")
        if not (at and _LOCAL.fullmatch(local) and _DOMAIN.fullmatch(domain)):
            raise ConfigError(
                f"MAILER_BOUNCE_ADDRESS must be a plain address like bounces@example.org"
                f" (no '+', no display name), not {address!r}"
            )
        if len(local) > 20:  # a local part has at most 64: 20, '+', and a tag of up to 40
            raise ConfigError("MAILER_BOUNCE_ADDRESS: at most 20 characters before the @")
        return cls(local, domain.lower(), tokens)

    @property
    def address(self) -> str:
        """The bare bounce address, without a tag."""
        return f"{self.local}@{self.domain}"

    def for_digest(self, digest_id: int) -> str:
        """The envelope sender of one digest."""
        return f"{self.local}+{self.tokens.return_tag(digest_id)}@{self.domain}"

    def digests_named(self, text: str) -> list[int]:
        """The digests whose validly signed tags appear in ``text``, in order, once each."""
        found: list[int] = []
        for match in self._pattern.finditer(text):
            digest_id = self.tokens.read_return_tag(match.group(1))
            if digest_id is not None and digest_id not in found:
                found.append(digest_id)
        return found

    def tagged(self, text: str) -> bool:
        """Whether ``text`` holds any tag of ours, valid or not (a forgery is worth a log line)."""
        return self._pattern.search(text) is not None
