"""The policy epoch: a counter in the audit head row that the database itself moves
on every change to what a release decision reads besides the consent (organizations'
status and sector, memberships, agreement versions, organizations' own rules), so
that the service may reuse those inputs while the counter has not moved
(service/disclosures/inputs.py).

Triggers, not application code, move it, so no code path (nor an operator's SQL) can
change an input without it. On PostgreSQL the trigger runs BEFORE each statement, so
the head row is locked before any row of the changed table (the lock order of
service/disclosures/decide.py: the audit head first).

Revision ID: 0090
Revises: 0080
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0090"
down_revision: str | None = "0080"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP = "UPDATE audit_head SET policy_epoch = policy_epoch + 1 WHERE id = 1"
# table -> the UPDATE that matters (None: any column).
WATCHED: dict[str, str | None] = {
    "organizations": "UPDATE OF id, active, sector",
    "collaboration_members": None,
    "agreement_versions": None,
    "organization_policies": None,
}


def upgrade() -> None:
    op.add_column(
        "audit_head",
        sa.Column("policy_epoch", sa.BigInteger(), nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION accord_bump_policy_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              {BUMP};
              RETURN NULL;
            END $$;
            """
        )
        for table, update in WATCHED.items():
            op.execute(
                f"CREATE TRIGGER {table}_policy_epoch "
                f"BEFORE INSERT OR {update or 'UPDATE'} OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION accord_bump_policy_epoch()"
            )
        return
    for table, update in WATCHED.items():
        for name, event in (
            ("insert", "INSERT"),
            ("update", update or "UPDATE"),
            ("delete", "DELETE"),
        ):
            op.execute(
                f"CREATE TRIGGER {table}_policy_epoch_{name} AFTER {event} ON {table} "
                f"BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER {table}_policy_epoch ON {table}")
        op.execute("DROP FUNCTION accord_bump_policy_epoch()")
    else:
        for table in WATCHED:
            for name in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER {table}_policy_epoch_{name}")
    op.drop_column("audit_head", "policy_epoch")
