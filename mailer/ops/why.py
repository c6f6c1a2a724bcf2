"""``mailer why``: explain one subscriber's outcome for one day from stored facts only."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from mailer.addresses import normalise_email
from mailer.db import bounces as bounce_repo
from mailer.db import digests as digest_repo
from mailer.db import fetches as fetch_repo
from mailer.db import subscribers as repo
from mailer.db.session import SessionFactory
from mailer.db.tables import BounceReportRow, DigestRow, SubscriberRow
from mailer.errors import NotFound
from mailer.models import DigestNote, DigestStatus, Match, SubscriberStatus
from mailer.schedule import Period, cadence_of, due_at


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer: a short outcome code, one sentence, supporting detail lines and raw facts."""

    email: str
    day: date
    outcome: str
    summary: str
    details: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)


def explain(
    session_factory: SessionFactory, email: str, day: date | None, now: datetime
) -> Explanation:
    """Why this subscriber did (or did not) get a digest on ``day`` (default: their today)."""
    address = normalise_email(email)
    with session_factory() as session:
        row = repo.get_row_by_email(session, address)
        if row is None:
            return _missing(session, address, day or now.date())
        cadence = cadence_of(row)
        wanted = day or now.astimezone(cadence.zone).date()
        period = Period.containing(cadence.frequency, wanted)
        digest = digest_repo.digest_for_period(session, row.id, period.key)
        if digest is not None:
            return _from_digest(session, row, digest, wanted)
        found = _without_digest(row, wanted, period, now)
        return _with_suppression(session, found)


def _missing(session: Session, address: str, day: date) -> Explanation:
    reason = repo.suppression_reason(session, address)
    if reason is None:
        raise NotFound(f"no subscriber {address}")
    summary = "this address was erased on request; nothing is kept but a hash"
    if reason != "erased":  # erased after a bounce, a complaint or the operator's block
        summary += f", which stays on the suppression list ({reason})"
    return Explanation(address, day, "erased", summary, facts={"tombstone": reason})


def _local(row: SubscriberRow, instant: datetime | None) -> str:
    if instant is None:
        return "never"
    return instant.astimezone(cadence_of(row).zone).strftime("%Y-%m-%d %H:%M %Z")


def _reply(digest: DigestRow) -> str:
    if digest.last_code is None and not digest.last_reply:
        return "no reply recorded"
    return f"{digest.last_code or ''} {digest.last_reply or ''}".strip()


def _from_digest(session: Session, row: SubscriberRow, digest: DigestRow, day: date) -> Explanation:
    facts: dict[str, Any] = {
        "period": digest.period, "status": digest.status, "note": digest.note,
        "message_id": digest.message_id, "papers": digest.paper_count,
        "matched": digest.matched_count, "considered": digest.considered_count,
        "attempts": digest.attempts, "last_code": digest.last_code,
        "last_reply": digest.last_reply, "sent_at": digest.sent_at,
        "next_attempt_at": digest.next_attempt_at,
    }  # fmt: skip
    outcome, summary, details = _digest_story(session, row, digest, day)
    listed = _listed(session, digest.id)
    facts["listed"] = [_paper_fact(m) for m in listed]
    details += [_paper_line(n, m) for n, m in enumerate(listed, start=1)]
    reports = bounce_repo.reports_about(session, [digest.id])
    if reports:
        facts["reports"] = [
            {"kind": r.kind, "status": r.status, "received_at": r.received_at} for r in reports
        ]
        outcome, summary = _late_story(row, digest, reports, (outcome, summary))
        details = [*details, *(_report_line(row, report) for report in reports)]
    return Explanation(row.email, day, outcome, summary, tuple(details), facts)


def _listed(session: Session, digest_id: int) -> tuple[Match, ...]:
    stored = digest_repo.load_digest(session, digest_id)
    return stored.matches if stored is not None else ()


def _learned(value: float | None) -> str:
    """A learned contribution in words: standard deviations above the day's average paper."""
    if value is None:
        return "no votes yet: keyword rank"
    return f"learned {value:+.2f}"


def _paper_line(number: int, match: Match) -> str:
    """One listed paper: why it is there (keywords, or the liked paper it resembles)."""
    title, learned = " ".join(match.paper.title.split()), _learned(match.learned)
    if match.resembles is not None:
        liked = " ".join(match.resembles.split())
        return f"{number}. {title} -- you may also like: resembles {liked!r} ({learned})"
    return f"{number}. {title} -- matched: {', '.join(match.interests)} ({learned})"


def _paper_fact(match: Match) -> dict[str, Any]:
    return {
        "key": match.paper.key,
        "title": match.paper.title,
        "matched": list(match.interests),
        "score": match.score,
        "learned": match.learned,
        "resembles": match.resembles,
    }


def _late_story(
    row: SubscriberRow, digest: DigestRow, reports: list[BounceReportRow], story: tuple[str, str]
) -> tuple[str, str]:
    """The outcome once reports came back by mail: a complaint, or a bounce after a 250."""
    by_kind = {report.kind: report for report in reports}
    accepted = f"accepted by the mail server at {_local(row, digest.sent_at)}"
    if "complaint" in by_kind:
        when = _local(row, by_kind["complaint"].received_at)
        return "complained", f"{accepted}; the reader reported it as spam ({when})"
    if "hard" in by_kind:
        hard = by_kind["hard"]
        return "bounced", f"{accepted}, then bounced later: {hard.status or ''} {hard.detail or ''}"
    return story


def _report_line(row: SubscriberRow, report: BounceReportRow) -> str:
    what = {
        "hard": "hard bounce",
        "soft": "soft bounce",
        "policy": "refusal of the message (policy, not the mailbox)",
        "complaint": "complaint (feedback loop)",
    }.get(report.kind, report.kind)
    line = f"{what} reported by mail at {_local(row, report.received_at)}"
    if report.status or report.detail:
        line += f": {report.status or ''} {report.detail or ''}".rstrip()
    if report.kind == "soft" and not report.counted:
        line += " (not counted: a later digest was delivered)"
    if report.kind == "complaint":
        line += "; the subscriber was unsubscribed and suppressed at once"
    return line


def _digest_story(
    session: Session, row: SubscriberRow, digest: DigestRow, day: date
) -> tuple[str, str, list[str]]:
    status, counts = (
        digest.status,
        (
            f"{digest.paper_count} papers listed, {digest.matched_count} matched "
            f"out of {digest.considered_count} considered"
        ),
    )
    if status == DigestStatus.SENT.value:
        return "sent", f"sent at {_local(row, digest.sent_at)}", [
            f"Message-ID: {digest.message_id}", counts,
        ]  # fmt: skip
    if status in (DigestStatus.PENDING.value, DigestStatus.SENDING.value):
        return "queued", f"queued, not sent yet ({status}, {digest.attempts} attempts)", [counts]
    if status == DigestStatus.RETRY.value:
        return "retry", f"delivery failed temporarily; {digest.attempts} attempts so far", [
            f"last SMTP reply: {_reply(digest)}",
            f"next attempt at {_local(row, digest.next_attempt_at)}",
        ]  # fmt: skip
    if status == DigestStatus.BOUNCED.value:
        return "bounced", f"the mail server refused it: {_reply(digest)}", [counts]
    if status == DigestStatus.FAILED.value:
        return "failed", f"gave up after {digest.attempts} attempts: {_reply(digest)}", [counts]
    return _skip_story(session, row, digest, day)


def _skip_story(
    session: Session, row: SubscriberRow, digest: DigestRow, day: date
) -> tuple[str, str, list[str]]:
    note = DigestNote(digest.note) if digest.note else DigestNote.NO_PAPERS
    if note is DigestNote.NO_MATCH:
        return (
            "no_match",
            (
                f"nothing matched: none of the {digest.considered_count} papers considered "
                "matched the profile"
            ),
            [f"profile: {row.profile}"],
        )
    if note is DigestNote.COMBINED:
        return "combined", "folded into the next digest, which caught up after downtime", []
    if note is DigestNote.NO_PAPERS:
        summary = "no new papers arrived since the previous digest"
        return "no_papers", summary, _fetch_log(session, day)
    status = note.value.removeprefix("subscriber_")
    return "not_sent", f"planned, but the subscriber was {status} when it was to be sent", []


def _fetch_log(session: Session, day: date) -> list[str]:
    runs = fetch_repo.fetch_runs_on(session, day)
    if not runs:
        return [f"no fetch was recorded for {day.isoformat()}"]
    return [
        f"fetch {run.source} for {day.isoformat()}: {_fetch_outcome(run.outcome)}"
        + (f" ({run.error})" if run.error else "")
        + (f", {run.new} new" if run.new else "")
        for run in runs
    ]


def _fetch_outcome(outcome: str) -> str:
    return {
        "no_announcement": "no announcement that day (the source does not publish then)",
        "error": "error",
        "empty": "nothing listed",
        "not_modified": "unchanged since the previous fetch",
    }.get(outcome, outcome)


def _without_digest(row: SubscriberRow, day: date, period: Period, now: datetime) -> Explanation:
    facts: dict[str, Any] = {
        "status": row.status, "period": period.key, "next_due_at": row.next_due_at,
    }  # fmt: skip
    status = row.status
    stories = {
        SubscriberStatus.PAUSED.value: ("paused", "paused: no digests until resumed"),
        SubscriberStatus.PENDING.value: (
            "not_confirmed",
            "not confirmed yet: the confirmation link was never opened"
            + (
                f" (sent {_local(row, row.confirmation_sent_at)})"
                if row.confirmation_sent_at
                else ""
            ),
        ),
        SubscriberStatus.UNSUBSCRIBED.value: (
            "unsubscribed",
            f"unsubscribed at {_local(row, row.unsubscribed_at)}",
        ),
        SubscriberStatus.BOUNCED.value: (
            "bounced",
            f"stopped after {row.hard_bounces} hard bounces; last reply: "
            f"{row.last_bounce_reply or 'none recorded'}",
        ),
    }
    if status in stories:
        outcome, summary = stories[status]
        return Explanation(row.email, day, outcome, summary, facts=facts)
    return _active_without_digest(row, day, period, now, facts)


def _with_suppression(session: Session, found: Explanation) -> Explanation:
    """Say so when the address is on the suppression list (why it is not mailed any more)."""
    reason = repo.suppression_reason(session, found.email)
    if reason is None or reason == "erased":
        return found
    line = f"on the suppression list ({reason}): never mailed again unless an operator lifts it"
    return replace(
        found, details=(*found.details, line), facts={**found.facts, "suppressed": reason}
    )


def _active_without_digest(
    row: SubscriberRow, day: date, period: Period, now: datetime, facts: dict[str, Any]
) -> Explanation:
    due = due_at(cadence_of(row), period)
    facts["due_at"] = due
    if due > now:
        return Explanation(
            row.email, day, "not_due",
            f"not due yet: that digest is due at {_local(row, due)}",
            (f"next digest due at {_local(row, row.next_due_at)}",), facts,
        )  # fmt: skip
    if row.next_due_at is not None and row.next_due_at <= now:
        return Explanation(
            row.email, day, "not_planned",
            f"due since {_local(row, row.next_due_at)} but not planned yet: the next worker "
            "run sends it (is a worker running?)",
            (), facts,
        )  # fmt: skip
    joined = row.confirmed_at or row.created_at
    if joined is not None and joined > due:
        return Explanation(
            row.email, day, "not_subscribed_yet",
            f"subscribed at {_local(row, joined)}, after that digest was due",
            (f"next digest due at {_local(row, row.next_due_at)}",), facts,
        )  # fmt: skip
    return Explanation(
        row.email, day, "missed",
        f"due at {_local(row, due)} but no digest was planned for that period",
        (f"next digest due at {_local(row, row.next_due_at)}",), facts,
    )  # fmt: skip
