"""claiming index ends with the id, so due rows are read in claiming order

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 01:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_index("ix_digest_claim")
        batch_op.create_index("ix_digest_claim", ["status", "next_attempt_at", "id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("digest", schema=None) as batch_op:
        batch_op.drop_index("ix_digest_claim")
        batch_op.create_index("ix_digest_claim", ["status", "next_attempt_at"], unique=False)
