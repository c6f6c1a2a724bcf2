"""planners claim due subscribers off a (next_due_at, id) index

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:00:00

The planner read each chunk of due subscribers in id order. With 100k subscribers due and the
statistics of a freshly loaded table, PostgreSQL answered that by reading every due row through
the status and next_due_at indexes and sorting them, for every chunk of 500: 172 ms a chunk
at 100k, growing with the table. Chunks are now read in (next_due_at, id) order from the last
one claimed, off one composite index that replaces the one on next_due_at alone (its leading
column, so every query that used the old index can use the new one).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    _swap("ix_subscriber_next_due_at", "ix_subscriber_due", ["next_due_at", "id"])


def downgrade() -> None:
    """Revert this revision."""
    _swap("ix_subscriber_due", "ix_subscriber_next_due_at", ["next_due_at"])


def _swap(old: str, new: str, columns: list[str]) -> None:
    if op.get_context().dialect.name != "postgresql":
        op.create_index(new, "subscriber", columns, unique=False)
        op.drop_index(old, table_name="subscriber")
        return
    # Built beside the old one without blocking writes: a plain CREATE INDEX would hold the
    # subscriber table locked against signups and planners for the whole build.
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {new}")
        op.create_index(new, "subscriber", columns, unique=False, postgresql_concurrently=True)
        # IF EXISTS: an upgrade cut off after this drop, before its version was stamped, can run
        # again.
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {old}")
