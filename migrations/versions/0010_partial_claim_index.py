"""the claiming index holds only rows a worker may still claim

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 22:00:00

``ix_digest_claim`` (status, next_attempt_at, id) held every outbox row, final ones included,
though claiming only ever reads pending, retry and sending rows. Kept for the whole retention
it grew by one entry per digest and, as each digest moves pending -> sending -> sent in one
day, by three (the old ones become dead only at the next vacuum): 62-172 bytes per delivered
digest on PostgreSQL in ``bench/outbox_days.py``. Partial, it holds about one day's queue.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIMABLE = "status = 'pending' OR status = 'retry' OR status = 'sending'"
COLUMNS = ["status", "next_attempt_at", "id"]


def upgrade() -> None:
    """Apply this revision."""
    _replace_claim_index(sa.text(CLAIMABLE))


def downgrade() -> None:
    """Revert this revision."""
    _replace_claim_index(None)


def _replace_claim_index(where: sa.TextClause | None) -> None:
    partial = {"sqlite_where": where, "postgresql_where": where}
    if op.get_bind().dialect.name != "postgresql":
        # A plain DROP and CREATE INDEX: no batch copy of ``digest`` (see revision 0008).
        op.drop_index("ix_digest_claim", table_name="digest")
        op.create_index("ix_digest_claim", "digest", COLUMNS, unique=False, **partial)
        return
    # Built beside the old one without blocking writes, then swapped in (as in 0003): a plain
    # DROP and CREATE would hold the digest table, and every worker with it, for the build.
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_digest_claim_new")
        op.create_index(
            "ix_digest_claim_new",
            "digest",
            COLUMNS,
            unique=False,
            postgresql_concurrently=True,
            **partial,
        )
        op.drop_index("ix_digest_claim", table_name="digest", postgresql_concurrently=True)
        op.execute("ALTER INDEX ix_digest_claim_new RENAME TO ix_digest_claim")
