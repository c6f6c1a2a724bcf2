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
    _replace_claim_index(["status", "next_attempt_at", "id"])


def downgrade() -> None:
    """Revert this revision."""
    _replace_claim_index(["status", "next_attempt_at"])


def _replace_claim_index(columns: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("digest", schema=None) as batch_op:
            batch_op.drop_index("ix_digest_claim")
            batch_op.create_index("ix_digest_claim", columns, unique=False)
        return
    # Built beside the old one without blocking writes, then swapped in: a plain DROP and
    # CREATE would hold the digest table locked, and every worker with it, for the build.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_digest_claim_new")
        op.create_index(
            "ix_digest_claim_new", "digest", columns, unique=False, postgresql_concurrently=True
        )
        op.drop_index("ix_digest_claim", table_name="digest", postgresql_concurrently=True)
        op.execute("ALTER INDEX ix_digest_claim_new RENAME TO ix_digest_claim")
