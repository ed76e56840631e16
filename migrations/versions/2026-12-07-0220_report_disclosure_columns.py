"""Disclosures countable without reading entry bodies (PostgreSQL; issue 25).

A collaboration's report counts the year's `disclosure` entries by legal basis,
between members (docs/reports.md). Both facts are inside each entry's canonical
body, and parsing a million bodies for one report took tens of seconds
(docs/benchmarks/reports.md). Two stored generated columns of `audit_entries`,
`disclosure_recipient` and `disclosure_basis` (the body's `details.recipient_org`
and `details.legal_basis`, NULL for every other action), are computed by the
database once, when an entry is appended, so they are exact by construction (no
insert statement changes, nothing can write them), and a partial covering index
on the disclosures' time answers a report from the index alone. SQLite cannot add
a stored generated column; there the report reads the bodies (json_extract).

Revision ID: 0220
Revises: 0210
Create Date: 2026-12-07 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0220"
down_revision: str | None = "0210"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_audit_entries_disclosures"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE audit_entries "
        "ADD COLUMN disclosure_recipient text GENERATED ALWAYS AS (CASE WHEN action = "
        "'disclosure' THEN (body::jsonb) -> 'details' ->> 'recipient_org' END) STORED, "
        "ADD COLUMN disclosure_basis text GENERATED ALWAYS AS (CASE WHEN action = "
        "'disclosure' THEN (body::jsonb) -> 'details' ->> 'legal_basis' END) STORED"
    )
    op.execute(
        f"CREATE INDEX {INDEX} ON audit_entries (at) "
        "INCLUDE (counterpart_org_id, disclosure_recipient, disclosure_basis) "
        "WHERE action = 'disclosure'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX {INDEX}")
        op.execute(
            "ALTER TABLE audit_entries DROP COLUMN disclosure_basis, "
            "DROP COLUMN disclosure_recipient"
        )
