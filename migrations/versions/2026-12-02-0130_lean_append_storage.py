"""Cheaper storage for what a delivery writes (PostgreSQL).

A delivery's staged entry (`audit_pending`, migration 0110) lives only inside its
own transaction: the commit-time trigger writes the entry and deletes the staged
row before the transaction ends, so no committed state ever holds one. Its table is
now UNLOGGED: the row's insert and delete no longer go through the write-ahead log.
A crash truncates an unlogged table, which removes only rows of transactions the
crash aborted anyway; standbys see the table empty, as every committed state has it.
The entry itself, in `audit_entries`, is written to the log as before.

A disclosure's entry is about 3.4 KB of canonical JSON for a 20-field referral, over
the size at which PostgreSQL compresses a row's values (2 KB), and the default
compression (pglz) costs more CPU than lz4 for these bodies. The staged halves and
the entry's body are now compressed with lz4 (PostgreSQL 14 and later, built with
lz4 as the packaged servers are). Values already stored keep their compression;
reading is the same either way.

SQLite has neither setting; nothing changes there.

Revision ID: 0130
Revises: 0120
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0130"
down_revision: str | None = "0120"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    op.execute("ALTER TABLE audit_pending SET UNLOGGED")
    op.execute(
        "ALTER TABLE audit_pending ALTER COLUMN body_head SET COMPRESSION lz4, "
        "ALTER COLUMN body_tail SET COMPRESSION lz4"
    )
    op.execute("ALTER TABLE audit_entries ALTER COLUMN body SET COMPRESSION lz4")


def downgrade() -> None:
    if not _postgresql():
        return
    op.execute("ALTER TABLE audit_entries ALTER COLUMN body SET COMPRESSION default")
    op.execute(
        "ALTER TABLE audit_pending ALTER COLUMN body_head SET COMPRESSION default, "
        "ALTER COLUMN body_tail SET COMPRESSION default"
    )
    op.execute("ALTER TABLE audit_pending SET LOGGED")
