"""The audit log's chain as a foreign key (PostgreSQL), and confidential organizations
(issue 22, items 11 and 17).

PostgreSQL: each entry's previous sequence number and previous leaf hash become
stored generated columns of `audit_entries` (`prev_seq` = seq - 1; `prev_hash` the
entry's own `prev`, read from its canonical body; both NULL for entry 0), with a
foreign key to (seq, leaf_hash): DESIGN.md section 7's "gaps and broken links are
impossible", even for a writer that bypasses the service (no insert statement
changes: the database computes both columns). SQLite cannot add a stored generated
column to a table; there the readiness check and the verifier stand
(docs/threat-model.md).

Both engines: `organizations.confidential` (default false): a confidential
organization's name and details are shown only to members of its collaborations
and to oversight (service/organizations/visibility.py).

Revision ID: 0180
Revises: 0170
Create Date: 2026-12-07 08:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0180"
down_revision: str | None = "0170"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHAIN_KEY = "fk_audit_entries_prev_entry"
LINK_KEY = "uq_audit_entries_seq_leaf_hash"


def upgrade() -> None:
    # A plain ADD COLUMN on both engines (a batch copy would drop the SQLite triggers).
    op.add_column(
        "organizations",
        sa.Column("confidential", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE audit_entries "
        "ADD COLUMN prev_seq bigint GENERATED ALWAYS AS "
        "(CASE WHEN seq = 0 THEN NULL ELSE seq - 1 END) STORED, "
        "ADD COLUMN prev_hash bytea GENERATED ALWAYS AS "
        "(CASE WHEN seq = 0 THEN NULL ELSE decode((body::jsonb) ->> 'prev', 'hex') END) STORED"
    )
    op.execute(f"ALTER TABLE audit_entries ADD CONSTRAINT {LINK_KEY} UNIQUE (seq, leaf_hash)")
    op.execute(
        f"ALTER TABLE audit_entries ADD CONSTRAINT {CHAIN_KEY} "
        "FOREIGN KEY (prev_seq, prev_hash) REFERENCES audit_entries (seq, leaf_hash)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE audit_entries DROP CONSTRAINT {CHAIN_KEY}")
        op.execute(f"ALTER TABLE audit_entries DROP CONSTRAINT {LINK_KEY}")
        op.execute("ALTER TABLE audit_entries DROP COLUMN prev_hash, DROP COLUMN prev_seq")
    op.drop_column("organizations", "confidential")
