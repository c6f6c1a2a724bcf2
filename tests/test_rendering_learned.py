"""A digest ranked by votes reads in the reader's order, with "You may also like" explained."""

from __future__ import annotations

from dataclasses import replace

from mailer.models import Digest, Links, Match, Paper
from mailer.rendering import Renderer
from tests.helpers.golden import sample_digest


def learned_digest() -> tuple[Digest, Links]:
    digest, links = sample_digest()
    first, hostile, plain = digest.matches
    suggested = Match(
        Paper(key="arxiv:2611.09999", title="Action Chunking Transformers", id=104,
              url="https://arxiv.org/abs/2611.09999"),
        2.1,
        (),
        learned=2.1,
        resembles="Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
    )  # fmt: skip
    matches = (
        replace(first, learned=1.4),
        suggested,
        replace(hostile, learned=-0.3),
        replace(plain, learned=-1.2),
    )
    feedback = {
        **links.feedback,
        104: ("https://x.example/feedback/M", "https://x.example/feedback/L"),
    }
    return replace(digest, matches=matches), replace(links, feedback=feedback)


def test_learned_sections_in_order_with_continuous_numbers() -> None:
    digest, links = learned_digest()
    email = Renderer().digest(digest, links, date_label="Sun 22 Nov 2026")
    text = email.text
    assert text.index("1.  Diffusion Policy") < text.index("== You may also like ==")
    assert text.index("== You may also like ==") < text.index("2.  Action Chunking Transformers")
    assert text.index("2.  Action Chunking") < text.index("== Other matches for your keywords ==")
    assert "similar to a paper you liked: Diffusion Policy: Visuomotor" in text
    assert "4.  World models without links" in text
    assert email.subject.endswith("6 new papers")  # 5 keyword matches + 1 suggestion
    html = email.html
    assert html.count("more like this</a>") == 4 and "feedback/M" in html
    assert html.index("You may also like") < html.index("Other matches for your keywords")
    assert "diffusion policy</p>" not in html.split("You may also like")[1].split("Other")[0]


def test_a_keyword_digest_is_still_grouped_by_interest() -> None:
    digest, links = sample_digest()
    email = Renderer().digest(digest, links, date_label="Sun 22 Nov 2026")
    assert "You may also like" not in email.text and "== diffusion policy ==" in email.text
