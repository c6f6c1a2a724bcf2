"""Golden-file comparison: ``MAILER_REGEN_GOLDEN=1 pytest`` rewrites the files instead."""

from __future__ import annotations

import os
from pathlib import Path

from mailer.models import (
    Digest,
    Frequency,
    Links,
    Match,
    Paper,
    Period,
    Span,
    Subscriber,
    SubscriberStatus,
)

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"


def assert_golden(name: str, actual: str) -> None:
    """Compare ``actual`` with ``tests/golden/<name>``; regenerate only when asked to."""
    path = GOLDEN_DIR / name
    if os.environ.get("MAILER_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        raise AssertionError(f"missing golden file {path}; create it with MAILER_REGEN_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, (
        f"{name} differs from its golden file (MAILER_REGEN_GOLDEN=1 updates)"
    )


# The sample the email golden files are rendered from: realistic, with every optional field.
def sample_digest(*, weekly: bool = False) -> tuple[Digest, Links]:
    """A digest with two interests, hostile text, a paper without links, and more matched."""
    subscriber = Subscriber(
        id=7,
        email="alice@example.com",
        status=SubscriberStatus.ACTIVE,
        profile='diffusion policy, "world model"\n-survey',
        frequency=Frequency.WEEKLY if weekly else Frequency.DAILY,
        send_time="08:00",
        timezone="Europe/Paris",
    )
    abstract_1 = (
        "Imitation learning from demonstrations has become the dominant recipe for robot "
        "manipulation. We introduce a diffusion policy that denoises action sequences "
        "conditioned on visual observations, and show that it handles multimodal action "
        "distributions far better than explicit policies. Across 12 tasks from four "
        "benchmarks, our diffusion policy improves success rates by 46.9% on average. We "
        "further analyse receding-horizon control, visual conditioning and time-series "
        "diffusion transformers, and release code and data."
    )
    first = abstract_1.index("diffusion policy")
    second = abstract_1.index("diffusion policy", first + 1)
    paper_1 = Paper(
        key="arxiv:2303.04137",
        title="Diffusion Policy: Visuomotor Policy Learning via Action Diffusion",
        abstract=abstract_1,
        authors=("Cheng Chi", "Siyuan Feng", "Yilun Du", "Zhenjia Xu", "Eric Cousineau"),
        arxiv_id="2303.04137",
        url="https://arxiv.org/abs/2303.04137",
        pdf_url="https://arxiv.org/pdf/2303.04137",
        hf_url="https://huggingface.co/papers/2303.04137",
        code_url="https://github.com/real-stanford/diffusion_policy",
        upvotes=42,
        id=101,
    )
    hostile = Paper(
        key="arxiv:2511.00002",
        title='<script>alert(1)</script> "World Models" & $\\mathcal{O}(n^2)$ <b>bold</b>',
        abstract="We learn a world model <img src=x onerror=alert(1)> in 'latent' space & more.",
        authors=('O\'Brien "Bob" <bob@evil>', "Zoë Ünïcode"),
        url="javascript:alert(1)",
        pdf_url="https://arxiv.org/pdf/2511.00002",
        upvotes=None,
        id=102,
    )
    plain = Paper(key="file:3", title="World models without links", abstract="", id=103)
    hostile_at = hostile.abstract.index("world model")
    title_at = hostile.title.index("World Models")
    matches = (
        Match(
            paper_1,
            9.5,
            ("diffusion policy",),
            ("diffus", "polici"),
            (
                Span("title", 0, 16),
                Span("abstract", first, first + 16),
                Span("abstract", second, second + 16),
                Span("abstract", 3, 3),
            ),
        ),
        Match(
            hostile,
            4.0,
            ('"world model"',),
            ("world", "model"),
            (Span("title", title_at, title_at + 12), Span("abstract", hostile_at, hostile_at + 11)),
        ),
        Match(plain, 1.0, ('"world model"', "diffusion policy"), ("world", "model")),
    )
    period = "2026-W47" if weekly else "2026-11-22"
    digest = Digest(subscriber, Period.parse(period), matches, total_matched=5, considered=312)
    links = Links(
        unsubscribe="https://digest.example.org/unsubscribe/UNSUB.TOKEN",
        preferences="https://digest.example.org/preferences/PREFS.TOKEN",
        view_online="https://digest.example.org/digest/VIEW.TOKEN",
        unsubscribe_mailto="mailto:unsubscribe@digest.example.org?subject=unsubscribe%20UNSUB.TOKEN",
        feed="https://digest.example.org/feed/FEED.TOKEN",
        feedback={
            paper.id: (
                f"https://digest.example.org/feedback/MORE.{paper.id}.TOKEN",
                f"https://digest.example.org/feedback/LESS.{paper.id}.TOKEN",
            )
            for paper in (paper_1, hostile, plain)
            if paper.id is not None
        },
        rate="https://digest.example.org/rate/RATE.TOKEN",
    )
    return digest, links
