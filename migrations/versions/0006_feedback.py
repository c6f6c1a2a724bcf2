"""readers' votes and seeded examples; learned ranking columns on digest_paper

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "feedback",
        sa.Column("id", BigId, nullable=False),
        sa.Column("subscriber_id", BigId, nullable=False),
        sa.Column("paper_id", BigId, nullable=True),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("vote", sa.SmallInteger(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("abstract", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_id"], ["paper.id"], name=op.f("fk_feedback_paper_id_paper"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscriber.id"],
            name=op.f("fk_feedback_subscriber_id_subscriber"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("subscriber_id", "key", name=op.f("uq_feedback_subscriber_id")),
    )
    op.create_index(op.f("ix_feedback_paper_id"), "feedback", ["paper_id"], unique=False)
    # Nullable columns without a default: no table rewrite on PostgreSQL, whatever its size.
    with op.batch_alter_table("digest_paper", schema=None) as batch_op:
        batch_op.add_column(sa.Column("learned", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("resembles", sa.Text(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("digest_paper", schema=None) as batch_op:
        batch_op.drop_column("resembles")
        batch_op.drop_column("learned")
    op.drop_index(op.f("ix_feedback_paper_id"), table_name="feedback")
    op.drop_table("feedback")
