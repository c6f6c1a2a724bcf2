"""One identity per paper across sources: stored once, refreshed by later sightings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.db.papers import upsert_papers
from mailer.db.session import SessionFactory
from mailer.db.tables import PaperRow
from mailer.sources import arxiv, hf_daily, rss

DATA = Path(__file__).parent / "data" / "sources"
NOW = datetime(2025, 8, 6, 12, tzinfo=UTC)


def test_hf_and_arxiv_sightings_are_one_paper(session_factory: SessionFactory) -> None:
    hf = hf_daily.parse((DATA / "hf_daily_2025-08-06.json").read_bytes()).papers
    feed, _ = arxiv.parse((DATA / "arxiv_cs.LG+cs.CL.atom").read_bytes(), "arxiv:cs.LG+cs.CL")
    pytest.importorskip("feedparser")
    rss_papers = rss.parse((DATA / "rss_lab_blog.xml").read_bytes(), "rss:lab").papers
    with session_factory.begin() as session:
        first = upsert_papers(session, hf, NOW)
        second = upsert_papers(session, feed.papers, NOW)
        third = upsert_papers(session, rss_papers, NOW)
    assert (first.new, second.new, third.new) == (6, 1, 2)  # 2508.03694 and hep-th/9901001 merge
    with session_factory() as session:
        row = session.scalars(select(PaperRow).where(PaperRow.key == "2508.03694")).one()
        total = session.scalar(select(func.count()).select_from(PaperRow))
        assert total == 9
        assert row.upvotes == 42  # arXiv and RSS know no upvotes: HF's count is kept
        assert row.sources == ["hf-daily", "arxiv:cs.LG+cs.CL", "rss:lab"]
        assert set(row.categories) == {"cs.LG", "cs.RO", "robotics", "imitation learning"}
        assert row.hf_url == "https://huggingface.co/papers/2508.03694"


def test_refetch_updates_upvotes_without_duplicating(session_factory: SessionFactory) -> None:
    data = (DATA / "hf_daily_2025-08-06.json").read_bytes()
    papers = hf_daily.parse(data).papers
    with session_factory.begin() as session:
        upsert_papers(session, papers, NOW)
    later = hf_daily.parse(data.replace(b'"upvotes": 42', b'"upvotes": 57')).papers
    with session_factory.begin() as session:
        stats = upsert_papers(session, later, NOW)
    assert (stats.new, stats.updated) == (0, 1)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(PaperRow)) == 6
        row = session.scalars(select(PaperRow).where(PaperRow.key == "2508.03694")).one()
        assert row.upvotes == 57
