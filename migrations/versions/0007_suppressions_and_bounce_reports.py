"""one suppression list (bounces, complaints, operator, erasure) and applied bounce reports

The erasure tombstones (``suppression``: hash, reason, when) become rows of the one list
that says which addresses are never mailed: they gain the address itself (kept until the
person is erased) and a detail. Subscribers already marked ``bounced`` are added to it as
hard bounces, so a signup or an import cannot bring a dead address back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("suppression", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))
    op.create_table(
        "bounce_report",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subscriber_id", _ID, nullable=True),
        sa.Column("digest_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("code", sa.SmallInteger(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["digest.id"],
            name=op.f("fk_bounce_report_digest_id_digest"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
            name=op.f("fk_bounce_report_subscriber_id_subscriber"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bounce_report")),
        sa.UniqueConstraint("key", name=op.f("uq_bounce_report_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("bounce_report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bounce_report_digest_id"), ["digest_id"])
        batch_op.create_index(batch_op.f("ix_bounce_report_received_at"), ["received_at"])
        batch_op.create_index(batch_op.f("ix_bounce_report_subscriber_id"), ["subscriber_id"])
    _suppress_bounced_subscribers()


def _suppress_bounced_subscribers() -> None:
    """Every subscriber already ``bounced`` joins the list as a hard bounce."""
    bind = op.get_bind()
    subscriber = sa.table(
        "subscriber",
        sa.column("email", sa.String),
        sa.column("status", sa.String),
        sa.column("last_bounce_at", sa.DateTime(timezone=True)),
        sa.column("last_bounce_reply", sa.Text),
    )
    suppression = sa.table(
        "suppression",
        sa.column("email_hash", sa.String),
        sa.column("email", sa.String),
        sa.column("reason", sa.String),
        sa.column("detail", sa.Text),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    existing = set(bind.execute(sa.select(suppression.c.email_hash)).scalars())
    now = datetime.now(UTC)
    rows = []
    for email, at, reply in bind.execute(
        sa.select(
            subscriber.c.email, subscriber.c.last_bounce_at, subscriber.c.last_bounce_reply
        ).where(subscriber.c.status == "bounced")
    ):
        key = hashlib.sha256(email.encode("utf-8")).hexdigest()
        if key in existing:
            continue
        existing.add(key)
        rows.append(
            {
                "email_hash": key,
                "email": email,
                "reason": "hard_bounce",
                "detail": (reply or "")[:1000] or None,
                "created_at": at or now,
            }
        )
    if rows:
        op.bulk_insert(suppression, rows)


def downgrade() -> None:
    """Revert this revision (the suppressions stay, as anonymous tombstones)."""
    with op.batch_alter_table("bounce_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bounce_report_subscriber_id"))
        batch_op.drop_index(batch_op.f("ix_bounce_report_received_at"))
        batch_op.drop_index(batch_op.f("ix_bounce_report_digest_id"))
    op.drop_table("bounce_report")
    with op.batch_alter_table("suppression", schema=None) as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_column("email")
