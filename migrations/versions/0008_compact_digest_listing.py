"""compact digest listing: one packed value per digest and its planned profile, not digest_paper

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:00:00

Each digest's rows in ``digest_paper`` (about 150 bytes of JSON per listed paper before its two
indexes) become one packed value on the digest (``mailer.db.listing``: ids and scores, and the
learned values) and a reference to the profile text it is explained from. Existing digests take
their subscriber's current profile text: the only one there is. Downgrading recomputes the
interests, words and spans from that text, as rendering does.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHUNK = 500

digest = sa.table(
    "digest",
    sa.column("id", BigId),
    sa.column("subscriber_id", BigId),
    sa.column("listing", sa.LargeBinary()),
    sa.column("profile_id", BigId),
)
digest_paper = sa.table(
    "digest_paper",
    sa.column("digest_id", BigId),
    sa.column("paper_id", BigId),
    sa.column("subscriber_id", BigId),
    sa.column("rank", sa.SmallInteger()),
    sa.column("score", sa.Float()),
    sa.column("interests", sa.JSON()),
    sa.column("terms", sa.JSON()),
    sa.column("spans", sa.JSON()),
    sa.column("learned", sa.Float()),
    sa.column("resembles", sa.Text()),
)
digest_profile = sa.table(
    "digest_profile",
    sa.column("id", BigId),
    sa.column("sha256", sa.String(64)),
    sa.column("text", sa.Text()),
)
subscriber = sa.table("subscriber", sa.column("id", BigId), sa.column("profile", sa.Text()))


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "digest_profile",
        sa.Column("id", BigId, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_profile")),
        sa.UniqueConstraint("sha256", name=op.f("uq_digest_profile_sha256")),
    )
    # Plain ALTER TABLE ADD COLUMN on every backend: on SQLite a batch copy of ``digest`` would
    # drop the old table, and with foreign keys on that empties every table referring to it.
    op.add_column("digest", sa.Column("listing", sa.LargeBinary(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        column = sa.Column("profile_id", BigId, sa.ForeignKey("digest_profile.id"), nullable=True)
        op.add_column("digest", column, inline_references=True)
    else:
        op.add_column("digest", sa.Column("profile_id", BigId, nullable=True))
        op.create_foreign_key(
            op.f("fk_digest_profile_id_digest_profile"),
            "digest",
            "digest_profile",
            ["profile_id"],
            ["id"],
        )
    op.create_index(op.f("ix_digest_profile_id"), "digest", ["profile_id"], unique=False)
    op.create_index(
        "ix_digest_subscriber_window", "digest", ["subscriber_id", "window_end"], unique=False
    )
    _pack_existing(op.get_bind())
    op.drop_table("digest_paper")


def _pack_existing(bind: sa.Connection) -> None:
    """Each digest's rows packed into its listing, with its subscriber's profile text."""
    after = 0
    profiles: dict[str, int] = {}
    while True:
        ids = list(
            bind.scalars(
                sa.select(digest_paper.c.digest_id)
                .distinct()
                .where(digest_paper.c.digest_id > after)
                .order_by(digest_paper.c.digest_id)
                .limit(CHUNK)
            )
        )
        if not ids:
            return
        rows = bind.execute(
            sa.select(
                digest_paper.c.digest_id,
                digest_paper.c.paper_id,
                digest_paper.c.score,
                digest_paper.c.learned,
                digest_paper.c.resembles,
                subscriber.c.profile,
            )
            .join(subscriber, subscriber.c.id == digest_paper.c.subscriber_id)
            .where(digest_paper.c.digest_id.in_(ids))
            .order_by(digest_paper.c.digest_id, digest_paper.c.rank)
        ).all()
        listed: dict[int, list[tuple[int, float, float | None, str | None]]] = {}
        texts: dict[int, str] = {}
        for digest_id, paper_id, score, learned, resembles, profile in rows:
            listed.setdefault(digest_id, []).append((paper_id, score, learned, resembles))
            texts[digest_id] = profile
        updates = [
            {
                "d_id": d,
                "d_listing": _pack(items),
                "d_profile": _profile_id(bind, profiles, texts[d]),
            }
            for d, items in listed.items()
        ]
        bind.execute(
            digest.update()
            .where(digest.c.id == sa.bindparam("d_id"))
            .values(listing=sa.bindparam("d_listing"), profile_id=sa.bindparam("d_profile")),
            updates,
        )
        after = ids[-1]


def _profile_id(bind: sa.Connection, known: dict[str, int], text: str) -> int:
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if key not in known:
        found = bind.scalar(sa.select(digest_profile.c.id).where(digest_profile.c.sha256 == key))
        if found is None:
            found = bind.scalar(
                digest_profile.insert().values(sha256=key, text=text).returning(digest_profile.c.id)
            )
        known[key] = int(found)
    return known[key]


def _pack(items: list[tuple[int, float, float | None, str | None]]) -> bytes:
    """Layout version 1 of mailer.db.listing (frozen here: this revision wrote it)."""
    count = len(items)
    learned = [item[2] for item in items]
    resembles = [[i, item[3]] for i, item in enumerate(items) if item[3] is not None]
    flags = (1 if any(v is not None for v in learned) else 0) | (2 if resembles else 0)
    parts = [
        struct.pack("<BBH", 1, flags, count),
        struct.pack(f"<{count}q", *(item[0] for item in items)),
        struct.pack(f"<{count}d", *(item[1] for item in items)),
    ]
    if flags & 1:
        parts.append(struct.pack(f"<{count}d", *(math.nan if v is None else v for v in learned)))
    if flags & 2:
        parts.append(json.dumps(resembles, ensure_ascii=False, separators=(",", ":")).encode())
    return b"".join(parts)


def _listed_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("digest_id", BigId, nullable=False),
        sa.Column("paper_id", BigId, nullable=False),
        sa.Column("subscriber_id", BigId, nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("interests", sa.JSON(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("spans", sa.JSON(), nullable=False),
        sa.Column("learned", sa.Float(), nullable=True),
        sa.Column("resembles", sa.Text(), nullable=True),
    ]


def downgrade() -> None:
    """Revert this revision.

    The rows are written to a holding table first: dropping the columns copies ``digest`` on
    SQLite, and dropping the old copy (foreign keys on) would empty ``digest_paper`` and clear
    the bounce reports' digest ids, which are kept aside and put back.
    """
    bind = op.get_bind()
    holding = op.create_table("_downgrade_0008_listed", *_listed_columns())
    _unpack_existing(bind, holding)
    reports = op.create_table(
        "_downgrade_0008_reports",
        sa.Column("id", BigId, nullable=False),
        sa.Column("digest_id", BigId, nullable=False),
    )
    report = sa.table("bounce_report", sa.column("id", BigId), sa.column("digest_id", BigId))
    bind.execute(
        reports.insert().from_select(
            ["id", "digest_id"],
            sa.select(report.c.id, report.c.digest_id).where(report.c.digest_id.is_not(None)),
        )
    )
    op.drop_index("ix_digest_subscriber_window", table_name="digest")
    op.drop_index(op.f("ix_digest_profile_id"), table_name="digest")
    if bind.dialect.name != "sqlite":
        op.drop_constraint(
            op.f("fk_digest_profile_id_digest_profile"), "digest", type_="foreignkey"
        )
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_column("profile_id")
        batch_op.drop_column("listing")
    bind.execute(
        report.update().where(report.c.id == reports.c.id).values(digest_id=reports.c.digest_id)
    )
    op.create_table(
        "digest_paper",
        *_listed_columns(),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["digest.id"],
            name=op.f("fk_digest_paper_digest_id_digest"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["paper_id"],
            ["paper.id"],
            name=op.f("fk_digest_paper_paper_id_paper"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
            name=op.f("fk_digest_paper_subscriber_id_subscriber"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("digest_id", "paper_id", name=op.f("pk_digest_paper")),
        sa.UniqueConstraint(
            "subscriber_id", "paper_id", name=op.f("uq_digest_paper_subscriber_id")
        ),
    )
    names = [column.name for column in holding.columns]
    bind.execute(digest_paper.insert().from_select(names, sa.select(*holding.columns)))
    op.drop_table("_downgrade_0008_reports")
    op.drop_table("_downgrade_0008_listed")
    op.drop_table("digest_profile")


def _unpack_existing(bind: sa.Connection, holding: sa.Table) -> None:
    """One row per listed paper, explained as rendering explains it (from the planned text)."""
    # The application's own decoding and explaining: what this revision's columns mean.
    from sqlalchemy.orm import Session

    from mailer.db.listing import unpack
    from mailer.db.papers import to_paper
    from mailer.db.reasons import Reexplainer
    from mailer.db.tables import PaperRow

    explain = Reexplainer()
    after = 0
    while True:
        heads = bind.execute(
            sa.select(digest.c.id, digest.c.subscriber_id, digest.c.listing, digest_profile.c.text)
            .outerjoin(digest_profile, digest_profile.c.id == digest.c.profile_id)
            .where(digest.c.id > after, digest.c.listing.is_not(None))
            .order_by(digest.c.id)
            .limit(CHUNK)
        ).all()
        if not heads:
            return
        listed = {digest_id: unpack(value) for digest_id, _, value, _ in heads}
        wanted = {item.paper_id for items in listed.values() for item in items}
        with Session(bind=bind) as session:
            papers = {
                row.id: to_paper(row)
                for row in session.scalars(sa.select(PaperRow).where(PaperRow.id.in_(wanted)))
            }
        rows: list[dict[str, Any]] = [
            {
                "digest_id": digest_id,
                "paper_id": match.paper.id,
                "subscriber_id": subscriber_id,
                "rank": rank,
                "score": match.score,
                "interests": list(match.interests),
                "terms": list(match.terms),
                "spans": [[s.field, s.start, s.end] for s in match.spans],
                "learned": match.learned,
                "resembles": match.resembles,
            }
            for digest_id, subscriber_id, _, text in heads
            for rank, match in enumerate(explain.matches(listed[digest_id], papers, text), start=1)
        ]
        if rows:
            bind.execute(holding.insert(), rows)
        after = heads[-1][0]
