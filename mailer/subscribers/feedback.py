"""A reader's examples: votes from the email, the CLI and the web, and seeded libraries."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from mailer.db import feedback as repo
from mailer.db import papers as paper_repo
from mailer.db import subscribers as subscriber_repo
from mailer.db.feedback import NewExample, StoredExample
from mailer.db.session import SessionFactory
from mailer.errors import InputError, NotFound
from mailer.models import Paper
from mailer.relevance import Vote
from mailer.relevance.library import Library, LibraryEntry, parse_library
from mailer.subscribers.manage import SubscriberRef, _row

MAX_EXAMPLES = 2000  # per subscriber: the model reads the newest 200; this bounds the table


@dataclass(frozen=True, slots=True)
class Voted:
    """A vote as recorded: on which paper, by whom, and what it is now (None: no vote)."""

    subscriber_id: int
    email: str
    paper: Paper
    vote: Vote | None


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What seeding did: the file's format, examples added and replaced, entries skipped."""

    email: str
    format: str
    added: int
    replaced: int
    untitled: int


def vote(
    sessions: SessionFactory,
    subscriber: SubscriberRef,
    paper_id: int,
    choice: Vote | None,
    *,
    origin: str,
    now: datetime,
) -> Voted:
    """Record ``choice`` on a stored paper (None clears it); idempotent, the last vote wins."""
    with sessions.begin() as session:
        row = _row(session, subscriber)
        paper = paper_repo.papers_by_id(session, [paper_id]).get(paper_id)
        if paper is None:
            raise NotFound("this paper is no longer stored")
        if choice is None:
            repo.clear(session, row.id, paper.key)
        else:
            repo.record(session, row.id, NewExample(paper.key, int(choice), origin, paper_id), now)
        return Voted(row.id, row.email, paper, choice)


def undo(sessions: SessionFactory, subscriber_id: int, paper_id: int, choice: Vote) -> Voted:
    """Take back ``choice`` on a paper, if it is still the current vote (a later one stays)."""
    with sessions.begin() as session:
        row = _row(session, subscriber_id)
        paper = paper_repo.papers_by_id(session, [paper_id]).get(paper_id)
        if paper is None:
            raise NotFound("this paper is no longer stored")
        repo.clear(session, row.id, paper.key, int(choice))
        now = repo.vote_on(session, row.id, paper_id)
        return Voted(row.id, row.email, paper, Vote(now) if now is not None else None)


def current(sessions: SessionFactory, subscriber_id: int, paper_id: int) -> Voted:
    """The subscriber's vote on a paper as it stands."""
    with sessions() as session:
        row = _row(session, subscriber_id)
        paper = paper_repo.papers_by_id(session, [paper_id]).get(paper_id)
        if paper is None:
            raise NotFound("this paper is no longer stored")
        now = repo.vote_on(session, row.id, paper_id)
        return Voted(row.id, row.email, paper, Vote(now) if now is not None else None)


def rate(
    sessions: SessionFactory, email: str, ref: str, choice: Vote | None, now: datetime
) -> Voted:
    """The operator's vote for a subscriber on a paper named by arXiv id or stored key."""
    with sessions() as session:
        paper = paper_repo.paper_by_ref(session, ref.strip())
    if paper is None or paper.id is None:
        raise NotFound(f"no stored paper {ref!r} (give an arXiv id or a paper key)")
    return vote(sessions, email, paper.id, choice, origin="operator", now=now)


def seed(
    sessions: SessionFactory, subscriber: SubscriberRef, data: bytes, now: datetime
) -> SeedReport:
    """Every entry of a library file becomes a "more like this" example, or nothing changes.

    Entries that are stored papers (by arXiv id) are recorded as votes on them; others keep
    their own title and abstract. A list of arXiv ids must name stored papers only.
    """
    library = parse_library(data)
    with sessions.begin() as session:
        row = _row(session, subscriber)
        ids = [e.arxiv_id for e in library.entries if e.arxiv_id]
        stored = paper_repo.papers_by_arxiv_id(session, ids)
        examples = _examples(library, stored)
        if repo.count(session, row.id) + len(examples) > MAX_EXAMPLES:
            raise InputError(f"a subscriber keeps at most {MAX_EXAMPLES} examples")
        added = sum(repo.record(session, row.id, example, now) for example in examples)
        email = row.email
    replaced = len(examples) - added
    return SeedReport(email, library.format, added, replaced, library.untitled)


def _examples(library: Library, stored: dict[str, Paper]) -> list[NewExample]:
    if library.format == "arXiv ids":
        missing = [e.arxiv_id for e in library.entries if e.arxiv_id not in stored]
        if missing:
            shown = ", ".join(str(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise InputError(
                f"{len(missing)} arXiv ids are not in the paper store ({shown}); a list of ids "
                "can only name stored papers: export BibTeX, RIS or CSL-JSON to bring the text"
            )
    found: dict[str, NewExample] = {}
    for entry in library.entries:
        paper = stored.get(entry.arxiv_id) if entry.arxiv_id else None
        example = _example(entry, paper)
        found[example.key] = example  # the same paper twice in one file is one example
    return list(found.values())


def _example(entry: LibraryEntry, paper: Paper | None) -> NewExample:
    more = int(Vote.MORE)
    if paper is not None:
        return NewExample(paper.key, more, "seed", paper.id, entry.title or None,
                          entry.abstract or None)  # fmt: skip
    if entry.arxiv_id:
        key = f"arxiv:{entry.arxiv_id}"
    elif entry.doi:
        key = f"doi:{entry.doi}"
    else:
        folded = " ".join(entry.title.casefold().split())
        key = "title:" + hashlib.sha1(folded.encode("utf-8")).hexdigest()
    return NewExample(key[:255], more, "seed", None, entry.title, entry.abstract)


def examples(sessions: SessionFactory, subscriber_id: int) -> list[StoredExample]:
    """A subscriber's examples, newest first."""
    with sessions() as session:
        return repo.examples_of(session, [subscriber_id]).get(subscriber_id, [])


def forget(sessions: SessionFactory, subscriber_id: int, example_id: int) -> bool:
    """Remove one of the subscriber's examples; False if it was not theirs (or gone)."""
    with sessions.begin() as session:
        return repo.forget(session, subscriber_id, example_id)


def subscriber_email(sessions: SessionFactory, subscriber_id: int) -> str:
    """The address of a subscriber (NotFound when removed)."""
    with sessions() as session:
        row = subscriber_repo.get_row(session, subscriber_id)
        if row is None:
            raise NotFound("this subscription no longer exists")
        return row.email
