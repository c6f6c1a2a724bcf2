"""The EmailMessage around a rendered email: MIME structure, headers, transport, DKIM."""

from __future__ import annotations

import base64
import email
import re
import shutil
import smtplib
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.errors import ConfigError, InvalidEmail
from mailer.mail import _fast
from mailer.mail._fast import MESSAGE_POLICY, SMTP_POLICY, SMTPUTF8_POLICY
from mailer.mail.dkim import sign_message
from mailer.mail.message import (
    MAX_7BIT_LINE,
    _transfer_encoding,
    build_message,
    list_id_for,
    make_message_id,
)
from mailer.mail.wire import crlf_only, message_bytes, wire_bytes
from mailer.models import Links
from mailer.rendering import RenderedEmail, Renderer
from tests.helpers.golden import assert_golden, sample_digest
from tests.helpers.smtp_server import SmtpServer

SENDER = "Paper Digest <digest@example.org>"
WHEN = datetime(2026, 11, 22, 8, 0, tzinfo=timezone(timedelta(hours=1)))


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def digest_message(renderer: Renderer, links: Links | None = None) -> tuple[EmailMessage, Any]:
    digest, sample_links = sample_digest()
    rendered = renderer.digest(digest, sample_links, date_label="Sun 22 Nov 2026")
    msg = build_message(
        rendered,
        sender=SENDER,
        recipient="Alice Ünïcode <alice@example.com>",
        message_id=make_message_id(SENDER),
        links=links or sample_links,
        list_id=list_id_for(SENDER),
        when=WHEN,
        reply_to="Lab Admin <admin@example.org>",
    )
    return msg, rendered


def parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_digest_headers_parse_back(renderer: Renderer) -> None:
    msg, rendered = digest_message(renderer)
    back = parse(message_bytes(msg))
    assert back["From"].addresses[0].addr_spec == "digest@example.org"
    assert back["To"].addresses[0].display_name == "Alice Ünïcode"
    assert back["Reply-To"].addresses[0].addr_spec == "admin@example.org"
    assert back["Subject"] == "Paper digest for Sun 22 Nov 2026: 5 new papers"
    assert back["Date"].datetime == WHEN
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.org>", back["Message-ID"])
    assert back["List-Id"] == "Paper digest <digest.example.org>"
    assert back["List-Unsubscribe"] == (
        "<https://digest.example.org/unsubscribe/UNSUB.TOKEN>, "
        "<mailto:unsubscribe@digest.example.org?subject=unsubscribe%20UNSUB.TOKEN>"
    )
    assert back["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert back["Precedence"] == "bulk"
    assert back["Auto-Submitted"] is None
    assert back.get_content_type() == "multipart/alternative"
    parts = list(back.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert parts[0].get_content().replace("\r\n", "\n") == rendered.text
    assert parts[1].get_content().replace("\r\n", "\n") == rendered.html


def test_digest_headers_match_golden_file(renderer: Renderer) -> None:
    msg, _ = digest_message(renderer)
    raw = message_bytes(msg).decode("ascii").replace("\r\n", "\n")
    head = raw.split("\n\n", 1)[0]
    head = re.sub(r"<[0-9a-f]{32}@", "<MASKED@", head)
    head = re.sub(r'boundary="[^"]+"', 'boundary="MASKED"', head)
    assert_golden("digest.headers.txt", head + "\n")


def test_long_unsubscribe_url_is_not_mime_encoded(renderer: Renderer) -> None:
    """A long token must stay a readable URL, or clients do not offer their unsubscribe button."""
    url = "https://digest.example.org/unsubscribe/" + "A" * 150
    links = Links(url, "https://x.org/p", "https://x.org/v", "mailto:u@example.org")
    msg, _ = digest_message(renderer, links)
    raw = message_bytes(msg).decode("ascii")
    assert f"List-Unsubscribe: <{url}>,\r\n <mailto:u@example.org>\r\n" in raw
    assert "=?utf-8?" not in raw.split("List-Unsubscribe:", 1)[1].split("\r\n\r\n")[0]
    assert parse(raw.encode())["List-Unsubscribe"] == f"<{url}>, <mailto:u@example.org>"


def test_mailto_only_when_configured(renderer: Renderer) -> None:
    links = Links("https://x.org/unsubscribe/T", "https://x.org/p", "https://x.org/v")
    msg, _ = digest_message(renderer, links)
    assert parse(message_bytes(msg))["List-Unsubscribe"] == "<https://x.org/unsubscribe/T>"


def test_confirmation_is_auto_submitted_without_bulk_headers(renderer: Renderer) -> None:
    rendered = renderer.confirmation("https://digest.example.org/confirm/T")
    msg = build_message(
        rendered,
        sender=SENDER,
        recipient="new@example.com",
        message_id=make_message_id(SENDER),
        links=None,
        list_id=list_id_for(SENDER),
        when=WHEN,
        auto_submitted=True,
    )
    back = parse(message_bytes(msg))
    assert back["Auto-Submitted"] == "auto-generated"
    for bulk in ("List-Unsubscribe", "List-Unsubscribe-Post", "Precedence"):
        assert back[bulk] is None
    assert back["Subject"] == "Confirm your paper digest subscription"


def test_message_ids_are_unique_at_the_from_domain() -> None:
    ids = {make_message_id("Digest <digest@Mail.Example.org>") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.endswith("@Mail.Example.org>") and i.startswith("<") for i in ids)
    with pytest.raises(ConfigError, match="MAILER_FROM"):
        make_message_id("not an address")


def test_list_id_is_derived_from_the_sender() -> None:
    assert list_id_for("Digest <Paper+News@Example.ORG>") == "Paper digest <digest.example.org>"


@pytest.mark.parametrize(
    "recipient",
    ["not-an-email", "a@b.org, c@d.org", "alice@example.com\r\nBcc: victim@example.org", "@x.org"],
)
def test_bad_recipients_are_refused(renderer: Renderer, recipient: str) -> None:
    rendered = RenderedEmail("s", "<p>h</p>", "t\n", "p")
    with pytest.raises(InvalidEmail, match="recipient"):
        build_message(
            rendered,
            sender=SENDER,
            recipient=recipient,
            message_id="<a@example.org>",
            links=None,
            list_id="x <x.example.org>",
            when=WHEN,
        )


def test_unsafe_unsubscribe_url_and_naive_date_are_refused() -> None:
    rendered = RenderedEmail("s", "<p>h</p>", "t\n", "p")
    kwargs: dict[str, Any] = {
        "sender": SENDER,
        "recipient": "a@example.org",
        "message_id": "<a@example.org>",
        "list_id": "x <x.example.org>",
    }
    evil = Links("https://x.org/u>, <https://evil.org/", "https://x.org/p", "https://x.org/v")
    with pytest.raises(ValueError, match="unsafe URL"):
        build_message(rendered, links=evil, when=WHEN, **kwargs)
    with pytest.raises(ValueError, match="timezone-aware"):
        build_message(rendered, links=None, when=datetime(2026, 11, 22), **kwargs)


def test_message_survives_a_real_smtp_server(renderer: Renderer) -> None:
    msg, rendered = digest_message(renderer)
    with SmtpServer() as server, smtplib.SMTP(server.host, server.port, timeout=10) as smtp:
        smtp.send_message(msg)
    (received,) = server.messages
    back = received.message
    assert received.rcpt_tos == ("alice@example.com",)
    assert back["Message-ID"] == msg["Message-ID"]
    assert back["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = back.get_body(("html",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == rendered.html


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A fresh RSA key pair made with openssl: (PEM private key, DNS TXT record)."""
    pytest.importorskip("dkim")
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test key")
    key_path: Path = tmp_path_factory.mktemp("dkim") / "key.pem"
    subprocess.run([openssl, "genrsa", "-traditional", "-out", str(key_path), "2048"], check=True)
    public_der = subprocess.run(
        [openssl, "rsa", "-in", str(key_path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key_path.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)


def test_dkim_signature_verifies_and_covers_list_unsubscribe(
    renderer: Renderer, dkim_key: tuple[bytes, bytes]
) -> None:
    import dkim

    private_key, txt = dkim_key

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.example.org."
        return txt

    msg, _ = digest_message(renderer)
    signed = sign_message(msg, selector="mail2026", domain="example.org", private_key=private_key)
    assert signed.startswith(b"DKIM-Signature: ")
    assert dkim.verify(signed, dnsfunc=dns)
    header = parse(signed)["DKIM-Signature"].replace(" ", "")
    tags = dict(part.split("=", 1) for part in header.split(";") if "=" in part)
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(
        tags["h"].lower().split(":")
    )
    tampered = signed.replace(b"UNSUB.TOKEN>", b"EVIL.TOKEN>", 1)
    assert tampered != signed and not dkim.verify(tampered, dnsfunc=dns)


def test_dkim_with_a_bad_key_is_a_config_error(renderer: Renderer) -> None:
    pytest.importorskip("dkim")
    msg, _ = digest_message(renderer)
    with pytest.raises(ConfigError, match="DKIM"):
        sign_message(msg, selector="s", domain="example.org", private_key=b"not a key")


def test_sent_date_is_kept_in_utc_offset() -> None:
    rendered = RenderedEmail("s", "<p>h</p>", "t\n", "p")
    msg = build_message(
        rendered,
        sender=SENDER,
        recipient="a@example.org",
        message_id="<a@example.org>",
        links=None,
        list_id="x <x.example.org>",
        when=datetime(2026, 11, 22, 7, tzinfo=UTC),
    )
    assert msg["Date"] == "Sun, 22 Nov 2026 07:00:00 +0000"


def test_html_travels_as_7bit_unless_a_line_is_too_long(renderer: Renderer) -> None:
    msg, rendered = digest_message(renderer)
    html = msg.get_body(("html",))
    assert html is not None and html["Content-Transfer-Encoding"] == "7bit"
    assert html.get_payload() == rendered.html  # no transfer-encoding growth at all
    long_line = RenderedEmail("s", "<p>" + "x" * 2000 + "</p>\n", "t\n", "p")
    msg = build_message(
        long_line,
        sender=SENDER,
        recipient="a@example.org",
        message_id="<a@example.org>",
        links=None,
        list_id="x <x.example.org>",
        when=WHEN,
    )
    part = msg.get_body(("html",))
    assert part is not None and part["Content-Transfer-Encoding"] == "quoted-printable"
    assert max(len(line) for line in message_bytes(msg).split(b"\r\n")) <= 998


@pytest.mark.parametrize(
    ("text", "cte"),
    [
        ("Plain ASCII papers\n.a dot line\nFrom here on\n", "7bit"),
        ("J\u00f6rg's paper\n", "quoted-printable"),
        ("x" * 999 + "\n", "quoted-printable"),
    ],
)
def test_text_travels_as_7bit_when_ascii_lines_fit(text: str, cte: str) -> None:
    msg = plain_message("<p>html</p>\n", text)
    raw = message_bytes(msg)
    body = parse(raw).get_body(("plain",))
    assert body is not None and body["Content-Transfer-Encoding"] == cte
    assert body.get_content().replace("\r\n", "\n") == text
    assert raw == msg.as_bytes(policy=SMTP_POLICY)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("From", "Paper Digest <digest@example.org>"),
        ("From", "A very long display name for the digest of the lab " * 2 + "<d@example.org>"),
        ("List-Id", "Paper digest <digest.example.org>"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
        ("X-Auto-Response-Suppress", "OOF, AutoReply"),
    ],
)
def test_shared_headers_fold_as_the_email_package_folds_them(name: str, value: str) -> None:

    shared = _fast.fixed_header(name, value)
    policies = [
        MESSAGE_POLICY,
        SMTP_POLICY,
        SMTPUTF8_POLICY,
        SMTP_POLICY.clone(linesep="\r\n"),  # what the generator makes for every MIME part
        MESSAGE_POLICY.clone(max_line_length=40),
        SMTP_POLICY.clone(max_line_length=None),
    ]
    for _ in range(2):  # the second round answers from what the first remembered
        for chosen in policies:
            fresh = policy.default.header_factory(name, value)
            assert shared.fold(policy=chosen) == fresh.fold(policy=chosen)


AWKWARD_BODY = (
    "J\u00f6rg\u2019s paper = 2 \u00d7 faster  \n"  # non-ASCII, '=' and trailing spaces
    "From the abstract: a line that mbox readers would mangle\n"
    ".a line starting with a dot\n" + "long " * 300 + "\n\ttabbed\n"
)


def plain_message(
    html: str, text: str, when: datetime = WHEN, subject: str = "Subject"
) -> EmailMessage:
    """A transactional message (no list headers) around the given bodies."""
    return build_message(
        RenderedEmail(subject, html, text, ""),
        sender=SENDER,
        recipient="alice@example.com",
        message_id=make_message_id(SENDER),
        links=None,
        list_id=list_id_for(SENDER),
        when=when,
    )


@pytest.mark.parametrize("subtype", ["plain", "html"])
def test_parts_round_trip_whatever_the_body(renderer: Renderer, subtype: str) -> None:
    msg = plain_message(AWKWARD_BODY, AWKWARD_BODY)
    raw = message_bytes(msg)
    # The fast generator writes what the stock one does.
    assert raw == msg.as_bytes(policy=SMTP_POLICY)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    body = parse(raw).get_body((subtype,))
    assert body is not None
    assert body["Content-Transfer-Encoding"] == "quoted-printable"
    assert body.get_content().replace("\r\n", "\n") == AWKWARD_BODY


def test_a_body_holding_the_boundary_gets_another(renderer: Renderer) -> None:

    html = f"<p>{_fast._BOUNDARY}</p>\n"
    msg = plain_message(html, "text\n")
    assert msg.get_boundary() != _fast._BOUNDARY
    back = parse(message_bytes(msg))
    html_part, text_part = back.get_body(("html",)), back.get_body(("plain",))
    assert html_part is not None and text_part is not None
    assert html_part.get_content().replace("\r\n", "\n") == html
    assert text_part.get_content().replace("\r\n", "\n") == "text\n"


def test_carriage_returns_in_a_body_take_the_stock_path(renderer: Renderer) -> None:
    msg = EmailMessage(policy=policy.default)
    msg["Subject"] = "cr"
    msg.set_content("one\r\ntwo\rthree\n", cte="7bit")
    assert message_bytes(msg) == msg.as_bytes(policy=SMTP_POLICY)


@pytest.mark.parametrize(
    ("recipient", "subject"),
    [
        ("a@example.org", "Paper digest for Sun 22 Nov 2026: 25 new papers"),
        ("Alice \u00dcn\u00efcode <alice@example.com>", "J\u00f6rg \u2014 " * 20),
        ('"Doe, Jane" <jane.doe+papers@sub.example.co.uk>', "x" * 200),
        ("u@ex\u00e4mple.org", "Weekly paper digest for week 47, 2026: 1 top paper"),
        (" spaced@example.org ", "s"),  # tidied, as when the parsed Address was set
        ('"Joe" <joe@example.org>', "s"),
        ("joe@example.org (a comment)", "s"),
    ],
)
def test_per_message_headers_fold_as_the_email_package_folds_them(
    recipient: str, subject: str
) -> None:
    """To is parsed once, Subject and Date are shared: each still folds like a fresh header."""

    when = datetime(2026, 11, 22, 8, 0, 1, 987654, tzinfo=UTC)
    links = Links(
        "https://digest.example.org/unsubscribe/" + "t" * 120,
        "https://digest.example.org/preferences/p",
        "https://digest.example.org/digest/d",
        "mailto:leave@example.org?subject=unsubscribe",
    )
    msg = build_message(
        RenderedEmail(subject, "<p>h</p>\n", "t\n", ""),
        sender=SENDER,
        recipient=recipient,
        message_id="<m@example.org>",
        links=links,
        list_id=list_id_for(SENDER),
        when=when,
    )
    from mailer.mail.message import parse_address

    stock = EmailMessage(policy=policy.default)
    stock["To"] = parse_address(recipient)  # what build_message used to store
    fresh = {
        "To": stock["To"],
        "Subject": policy.default.header_factory("Subject", subject),
        "Date": policy.default.header_factory("Date", when),
    }
    for chosen in (SMTP_POLICY, SMTPUTF8_POLICY, SMTP_POLICY.clone(max_line_length=40)):
        for name, header in fresh.items():
            assert msg[name].fold(policy=chosen) == header.fold(policy=chosen)
    unsubscribe = msg["List-Unsubscribe"]
    assert not unsubscribe.defects
    assert str(unsubscribe) == f"<{links.unsubscribe}>, <{links.unsubscribe_mailto}>"


def test_messages_sent_in_one_second_share_their_date_header() -> None:
    dates = []
    for micros in (100, 999_999):
        msg = plain_message(
            "<p>h</p>\n", "t\n", datetime(2026, 11, 22, 7, 0, 5, micros, tzinfo=UTC)
        )
        dates.append(msg["Date"])
    assert dates[0] is dates[1]
    assert dates[0] == "Sun, 22 Nov 2026 07:00:05 +0000"
    same_instant = datetime(2026, 11, 22, 8, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    msg = plain_message("<p>h</p>\n", "t\n", when=same_instant)
    assert msg["Date"] == "Sun, 22 Nov 2026 08:00:05 +0100"


def test_a_list_header_that_could_hold_an_encoded_word_is_parsed() -> None:
    from mailer.mail.message import ListHeader

    value = "<mailto:leave@example.org?subject==?utf-8?q?bye?=>"
    header = ListHeader("List-Unsubscribe", value)
    assert str(header) == str(policy.default.header_factory("X-Any", value))


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=("Cs",)), max_size=400),
    html=st.text(st.characters(exclude_categories=("Cs",)), max_size=400),
    utf8=st.booleans(),
)
def test_built_messages_are_written_as_the_stock_generator_writes_them(
    text: str, html: str, utf8: bool
) -> None:

    msg = plain_message(html, text)
    chosen = SMTPUTF8_POLICY if utf8 else SMTP_POLICY
    direct = _fast.alternative_chunks(msg, chosen)
    assert message_bytes(msg, utf8=utf8) == msg.as_bytes(policy=chosen)
    # Every body build_message makes is ASCII without CR (7bit or quoted-printable).
    assert direct is not None
    # ... so its lines are known to end in CRLF, and they do.
    data, known = wire_bytes(msg, utf8=utf8)
    assert known and crlf_only(data)


def _other_shapes() -> list[EmailMessage]:
    preamble = plain_message("<p>h</p>\n", "t\n")
    preamble.preamble = "This is a MIME message.\n"
    nested = EmailMessage(policy=policy.default)
    nested["Subject"] = "nested"
    nested.set_content("plain")
    nested.add_alternative("<p>html</p>", subtype="html")
    nested.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream")
    eight_bit = EmailMessage(policy=policy.default)
    eight_bit.set_content("J\u00f6rg")
    eight_bit.add_alternative("<p>J\u00f6rg</p>", subtype="html", cte="8bit")
    empty = EmailMessage(policy=policy.default)
    empty["Content-Type"] = 'multipart/alternative; boundary="b"'
    empty.set_payload([])
    return [preamble, nested, eight_bit, empty]


@pytest.mark.parametrize("msg", _other_shapes(), ids=["preamble", "nested", "8bit", "empty"])
def test_other_shapes_go_through_the_generator(msg: EmailMessage) -> None:

    assert _fast.alternative_chunks(msg, SMTP_POLICY) is None
    assert message_bytes(msg) == msg.as_bytes(policy=SMTP_POLICY)
    assert wire_bytes(msg) == (msg.as_bytes(policy=SMTP_POLICY), False)  # not known: scanned


def test_a_header_line_that_is_not_crlf_sends_the_message_through_the_generator() -> None:

    class BareLineFeed(str):
        """A header object from elsewhere that folds with a bare LF (none made here does)."""

        name = "X-Raw"

        def fold(self, *, policy: Any) -> str:
            return "X-Raw: a\nb\r\n"

    msg = plain_message("<p>h</p>\n", "t\n")
    msg["X-Raw"] = BareLineFeed("a b")
    assert wire_bytes(msg) == (msg.as_bytes(policy=SMTP_POLICY), False)


@pytest.mark.parametrize("subject", ["s\r\nBcc: victim@example.org", "s\nX-Evil: 1", "s\rx"])
def test_a_subject_with_a_line_break_is_refused(subject: str) -> None:
    """Shared header objects skip ``msg[name] = value``'s check, so they make it themselves."""
    with pytest.raises(ValueError, match="linefeed"):
        plain_message("<p>h</p>\n", "t\n", subject=subject)


@given(
    st.lists(st.integers(0, 1_100), max_size=4),
    st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\x85"]),
    st.booleans(),
)
def test_transfer_encoding_reads_lines_as_the_encoded_body_splits_them(
    lengths: list[int], end: str, trailing: bool
) -> None:
    body = end.join("x" * n for n in lengths) + (end if trailing else "")
    if body.isascii():
        longest = max(map(len, body.encode("ascii").splitlines()), default=0)
        expected = "7bit" if longest <= MAX_7BIT_LINE else "quoted-printable"
    else:
        expected = "quoted-printable"
    assert _transfer_encoding(body) == expected
