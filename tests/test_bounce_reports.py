"""Classifying what reaches the bounce mailbox: real servers' DSNs, ARF reports, auto-replies."""

from __future__ import annotations

import pytest

from mailer.mail.reports import ReportKind, Unreadable, read_report
from mailer.mail.verp import ReturnPath
from mailer.tokens import Tokens
from tests.helpers.bounces import FIXTURES, report

RCPT = "alice@example.net"
MID = "<3f2a9c1e7b@example.org>"

# fixture -> (kind, status, format): what a careful operator would call each one.
EXPECTED = {
    "postfix_user_unknown.eml": (ReportKind.HARD, "5.1.1", "dsn"),
    "postfix_delayed.eml": (ReportKind.SOFT, "4.4.1", "dsn"),
    "postfix_delivered_notice.eml": (ReportKind.UNKNOWN, None, "dsn"),
    "exim_mailbox_full.eml": (ReportKind.SOFT, "5.2.2", "dsn"),  # Status 5.0.0, server said 5.2.2
    "exim_text_no_such_user.eml": (ReportKind.HARD, "5.1.1", "heuristic"),
    "qmail_no_mailbox.eml": (ReportKind.HARD, "5.1.1", "heuristic"),
    "gmail_address_not_found.eml": (ReportKind.HARD, "5.1.1", "dsn"),
    "gmail_dmarc_policy.eml": (ReportKind.POLICY, "5.7.26", "dsn"),
    "exchange_online_recipient_not_found.eml": (ReportKind.HARD, "5.1.10", "dsn"),
    "yahoo_arf_abuse.eml": (ReportKind.COMPLAINT, "abuse", "arf"),
    "arf_rfc5965_abuse.eml": (ReportKind.COMPLAINT, "abuse", "arf"),
    "arf_dmarc_auth_failure.eml": (ReportKind.UNKNOWN, "auth-failure", "arf"),
    "vacation_rfc3834.eml": (ReportKind.AUTO_REPLY, None, "auto-reply"),
    "outlook_automatic_reply.eml": (ReportKind.AUTO_REPLY, None, "auto-reply"),
    "human_reply.eml": (ReportKind.UNKNOWN, None, "none"),
}


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(EXPECTED) == FIXTURES


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_server_reports_are_classified(name: str) -> None:
    kind, status, fmt = EXPECTED[name]
    found = read_report(report(name, message_id=MID, rcpt=RCPT))
    assert (found.kind, found.status, found.format) == (kind, status, fmt)
    if kind in (ReportKind.HARD, ReportKind.SOFT, ReportKind.POLICY):
        assert found.recipients == (RCPT,)
        assert MID in found.message_ids  # the returned headers, or the copy pasted as text
        assert found.detail and "\n" not in found.detail


def test_smtp_codes_and_diagnostics_are_kept() -> None:
    found = read_report(report("postfix_user_unknown.eml", rcpt=RCPT))
    assert found.code == 550
    assert found.detail.startswith("550 5.1.1 <alice@example.net>: Recipient address rejected")


def test_complaints_name_the_recipient_when_the_provider_does() -> None:
    assert read_report(report("arf_rfc5965_abuse.eml", rcpt=RCPT)).recipients == (RCPT,)
    assert read_report(report("yahoo_arf_abuse.eml", rcpt=RCPT)).recipients == ()  # redacted


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_signed_envelope_sender_is_found_wherever_the_server_put_it(name: str) -> None:
    path = ReturnPath.parse("bounces@example.org", Tokens("k" * 32))
    sender = path.for_digest(4711)
    found = read_report(report(name, return_path=sender, message_id=MID, rcpt=RCPT))
    assert path.digests_named(found.evidence) == [4711]
    forged = ReturnPath.parse("bounces@example.org", Tokens("another key")).for_digest(4711)
    other = read_report(report(name, return_path=forged, message_id=MID, rcpt=RCPT))
    assert path.digests_named(other.evidence) == []
    assert path.tagged(other.evidence)  # looks like ours, is not: worth a log line


def test_a_tag_survives_a_server_that_lowercases_or_uppercases_it() -> None:
    path = ReturnPath.parse("bounces@example.org", Tokens("k" * 32))
    sender = path.for_digest(99)
    assert path.digests_named(f"Delivered-To: {sender.upper()}") == [99]


def test_vacation_subjects_in_several_languages() -> None:
    for subject in ("Abwesenheitsnotiz: x", "Réponse automatique : x", "Out of Office: x"):
        data = f"From: a@example.net\nSubject: {subject}\n\nBack soon.\n".encode()
        assert read_report(data).kind is ReportKind.AUTO_REPLY, subject


def test_a_bounce_that_only_says_mailer_daemon_and_nothing_else_is_unknown() -> None:
    data = b"From: MAILER-DAEMON@example.net\nSubject: failure notice\n\nsomething broke\n"
    assert read_report(data).kind is ReportKind.UNKNOWN


def test_garbage_is_unknown_not_an_error() -> None:
    for data in (b"", b"\0\0\0\xff\xfe", b"Content-Type: multipart/report\n\n--x\n", b"x" * 10000):
        assert read_report(data).kind is ReportKind.UNKNOWN


def _nested(depth: int) -> bytes:
    head = b"".join(
        b'--b%d\nContent-Type: multipart/mixed; boundary="b%d"\n\n' % (i, i + 1)
        for i in range(depth)
    )
    return b'Content-Type: multipart/mixed; boundary="b0"\n\n' + head + b"--b%d\n\nx\n" % depth


def test_mime_bombs_are_refused_by_a_scan_before_any_parsing() -> None:
    wide = b'Content-Type: multipart/mixed; boundary="b"\n\n' + b"--b\n\nx\n" * 60_000
    with pytest.raises(Unreadable, match="5001 multipart containers"):
        read_report(_nested(5000), max_parts=200)
    with pytest.raises(Unreadable, match="60000 boundary lines"):
        read_report(wide, max_parts=200)


def test_nesting_that_hides_from_the_scan_is_caught_while_walking() -> None:
    # Folded Content-Type headers escape the scan's line pattern; the walk still stops.
    head = b"".join(
        b'--b%d\nContent-Type:\n multipart/mixed; boundary="b%d"\n\n' % (i, i + 1)
        for i in range(40)
    )
    bomb = b'Content-Type: multipart/mixed; boundary="b0"\n\n' + head + b"--b40\n\nx\n"
    with pytest.raises(Unreadable, match="levels"):
        read_report(bomb, max_parts=200)


def test_a_report_within_the_limits_is_read() -> None:
    parts = b'Content-Type: multipart/mixed; boundary="b"\n\n' + b"--b\n\nx\n" * 50 + b"--b--\n"
    assert read_report(parts, max_parts=200).kind is ReportKind.UNKNOWN
