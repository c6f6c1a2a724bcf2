"""Classify an incoming message: a bounce (hard, soft), a complaint, an auto-reply, or unknown.

Pure: bytes in, a ``Report`` out. The input is whatever reached the bounce mailbox, so it is
treated as hostile: its size is bounded by the caller, and a MIME bomb (parts nested or
repeated past ``max_parts``) is refused by a cheap scan before the email package parses it.
"""

from __future__ import annotations

import email
import re
from dataclasses import replace
from email.message import Message

from mailer.mail.dsn import read_standard
from mailer.mail.heuristics import (
    looks_like_bounce,
    quoted_message_ids,
    read_auto_reply,
    read_nonstandard,
)
from mailer.mail.report_types import Report, ReportKind, Unreadable

__all__ = ["Report", "ReportKind", "Unreadable", "read_report"]

MAX_NESTING = 16  # multipart levels; real reports have at most five or six
BODY_TEXT_LIMIT = 1_000_000  # characters of decoded body text searched for evidence
_BOUNDARY_LINE = re.compile(rb"^--", re.MULTILINE)
_MULTIPART = re.compile(rb"^content-type:[ \t]*multipart/", re.MULTILINE | re.IGNORECASE)


def read_report(data: bytes, *, max_parts: int = 200) -> Report:
    """Classify one message; Unreadable when it cannot be parsed safely."""
    _refuse_bombs(data, max_parts)
    try:
        message = email.message_from_bytes(data)
        parts = _parts(message, max_parts)
        body = _body_text(parts)
        report = _classify(message, parts, body)
    except Unreadable:
        raise
    except (RecursionError, LookupError, ValueError, TypeError, AttributeError) as exc:
        # The email package and the detectors are not written for hostile input.
        raise Unreadable(f"cannot parse the message ({type(exc).__name__})") from None
    return replace(report, evidence=data.decode("latin-1") + "\n" + body)


def _refuse_bombs(data: bytes, max_parts: int) -> None:
    multiparts = len(_MULTIPART.findall(data))
    if multiparts > MAX_NESTING:
        raise Unreadable(f"{multiparts} multipart containers (at most {MAX_NESTING} are read)")
    boundaries = len(_BOUNDARY_LINE.findall(data))
    if boundaries > 2 * max_parts + 8:
        raise Unreadable(f"{boundaries} boundary lines: more than {max_parts} MIME parts")


def _parts(message: Message, max_parts: int) -> list[Message]:
    """Every part, depth first, without recursion; Unreadable past the limits."""
    found: list[Message] = []
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_NESTING or len(found) >= max_parts:
            raise Unreadable(f"more than {max_parts} MIME parts or {MAX_NESTING} levels")
        found.append(part)
        payload = part.get_payload()
        if isinstance(payload, list):
            children = [child for child in payload if isinstance(child, Message)]
            stack.extend((child, depth + 1) for child in reversed(children))
    return found


def _body_text(parts: list[Message]) -> str:
    """The decoded text of the leaf parts, bounded: quoted headers and tags hide in there."""
    chunks: list[str] = []
    size = 0
    for part in parts:
        if part.is_multipart() or part.get_content_maintype() not in ("text", "message"):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        text = _decode(data, part.get_content_charset())
        chunks.append(text[: BODY_TEXT_LIMIT - size])
        size += len(chunks[-1])
        if size >= BODY_TEXT_LIMIT:
            break
    return "\n".join(chunks)


def _decode(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know: the addresses are ASCII anyway
        return data.decode("utf-8", "replace")


def _classify(message: Message, parts: list[Message], body: str) -> Report:
    standard = read_standard(parts)
    if standard is not None:
        return standard
    if looks_like_bounce(message):
        bounce = read_nonstandard(message, body)
        if bounce is not None:
            return bounce
    auto = read_auto_reply(message)
    if auto is not None:
        return auto
    return Report(ReportKind.UNKNOWN, "none", message_ids=quoted_message_ids(body))
