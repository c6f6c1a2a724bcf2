"""The bounce mailbox: where bounces and complaints arrive, a Maildir or an IMAP folder.

Every read is bounded (at most ``max_bytes`` of a message), and every message read is marked
once it has been dealt with, so reading the mailbox again changes nothing: in a Maildir it
moves to ``cur/`` with the Seen flag (and Flagged, for the operator, when it could not be
read); over IMAP it gets ``\\Seen`` (and ``\\Flagged``).
"""

from __future__ import annotations

import contextlib
import heapq
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mailer.errors import ConfigError

_SUBDIRS = ("new", "cur", "tmp")
_INFO = ":2,"  # Maildir's separator between a file's unique name and its flags


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as read: at most ``max_bytes`` of it."""

    key: str
    data: bytes
    truncated: bool  # the message was longer than what was read


class Inbox(Protocol):
    """A mailbox of reports: unread messages in, each one marked done or kept."""

    def messages(self, limit: int) -> Iterator[Incoming]:
        """Up to ``limit`` messages not yet dealt with, oldest first."""
        ...

    def done(self, key: str) -> None:
        """Mark a message dealt with: it is not read again."""
        ...

    def keep(self, key: str) -> None:
        """Mark a message that could not be read: flagged for a person, not read again."""
        ...

    def close(self) -> None:
        """Let go of the mailbox."""
        ...


class MaildirInbox:
    """A Maildir the mail server delivers into (``new/``); done messages go to ``cur/``."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        missing = [sub for sub in _SUBDIRS if not (self.path / sub).is_dir()]
        if missing:
            raise ConfigError(
                f"MAILER_BOUNCE_MAILBOX {self.path} is not a Maildir (no {', '.join(missing)}/)"
            )

    def messages(self, limit: int) -> Iterator[Incoming]:
        """Messages in ``new/``, then those in ``cur/`` without the Seen flag, oldest first."""
        count = 0
        for sub in ("new", "cur"):
            for name in self._oldest(sub, limit - count):
                incoming = self._read(f"{sub}/{name}")
                if incoming is not None:
                    count += 1
                    yield incoming

    def _oldest(self, sub: str, limit: int) -> list[str]:
        """The first ``limit`` waiting names (they start with the delivery time), in order.

        Scanned, not listed, so a folder of a million done messages costs no memory.
        """
        if limit <= 0:
            return []
        with os.scandir(self.path / sub) as entries:
            waiting = (
                entry.name
                for entry in entries
                if not entry.name.startswith(".")
                and not (sub == "cur" and "S" in _flags(entry.name))
            )
            return heapq.nsmallest(limit, waiting)

    def _read(self, key: str) -> Incoming | None:
        try:
            with open(self.path / key, "rb") as handle:
                data = handle.read(self.max_bytes + 1)
        except (FileNotFoundError, IsADirectoryError):  # taken by another reader meanwhile
            return None
        return Incoming(key, data[: self.max_bytes], len(data) > self.max_bytes)

    def done(self, key: str) -> None:
        """Move to ``cur/`` with the Seen flag."""
        self._flag(key, "S")

    def keep(self, key: str) -> None:
        """Move to ``cur/`` flagged Seen and Flagged: a person should look at it."""
        self._flag(key, "FS")

    def _flag(self, key: str, added: str) -> None:
        name = key.partition("/")[2]
        unique, _, flags = name.partition(_INFO)
        merged = "".join(sorted(set(flags) | set(added)))  # Maildir wants flags in ASCII order
        # Another reader may have moved it first: it is dealt with either way.
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path / key, self.path / "cur" / f"{unique}{_INFO}{merged}")

    def close(self) -> None:
        """Nothing to let go of."""


def _flags(name: str) -> str:
    return name.partition(_INFO)[2]
