"""Agreements every member countersigns (issue 24, docs/agreements.md).

- `agreement_versions` gains `members` (the member organizations when the version
  was proposed), `sha256` (SHA-256 of the version's canonical signed bytes,
  accord_client.agreements) and `previous_sha256` (the chain).
- `agreement_signatures`: one organization's Ed25519 signature of one version, by a
  signing key registered in the directory, with its withdrawal (`withdrawn_at`).
  A flow is in force between two organizations only while both hold a live
  signature on the version containing it.
- The policy-epoch trigger of migration 0090 (ENABLE ALWAYS, migration 0120) watches
  the new table, so a signature or a withdrawal moves the epoch and takes the policy
  lock exclusively on PostgreSQL: releases are ordered against it exactly as against
  a consent revocation (service/audit/ordering.py).

Upgrading an existing deployment FAILS CLOSED: versions written before this
revision keep NULL `members` and `sha256`, cannot be signed, and so bind nobody.
From the upgrade on, no agreement flow releases anything until a platform
administrator proposes a new version (PUT /v1/collaborations/{id}/agreement) and
the members countersign it. Plain ADD COLUMN and CREATE TABLE on both engines.

Revision ID: 0210
Revises: 0200
Create Date: 2026-12-07 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0210"
down_revision: str | None = "0200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "agreement_signatures"
BUMP = "UPDATE audit_head SET policy_epoch = policy_epoch + 1 WHERE id = 1"
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("agreement_versions", sa.Column("members", JSON, nullable=True))
    op.add_column("agreement_versions", sa.Column("sha256", sa.String(64), nullable=True))
    op.add_column("agreement_versions", sa.Column("previous_sha256", sa.String(64), nullable=True))
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("collaboration_id", sa.Uuid(), nullable=False),
        sa.Column("agreement_version_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_by", sa.String(200), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["collaboration_id"], ["collaborations.id"]),
        sa.ForeignKeyConstraint(["agreement_version_id"], ["agreement_versions.id"]),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agreement_version_id", "org_id"),
    )
    op.create_index(f"ix_{TABLE}_collaboration_id", TABLE, ["collaboration_id"])
    op.create_index(f"ix_{TABLE}_org_id", TABLE, ["org_id"])
    if op.get_bind().dialect.name == "postgresql":
        # The function of migrations 0090/0100: it takes the policy lock exclusively.
        op.execute(
            f"CREATE TRIGGER {TABLE}_policy_epoch "
            f"BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION accord_bump_policy_epoch()"
        )
        op.execute(f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER {TABLE}_policy_epoch")
        return
    for name, event in (("insert", "INSERT"), ("update", "UPDATE"), ("delete", "DELETE")):
        op.execute(
            f"CREATE TRIGGER {TABLE}_policy_epoch_{name} AFTER {event} ON {TABLE} BEGIN {BUMP}; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER {TABLE}_policy_epoch ON {TABLE}")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {TABLE}_policy_epoch_{name}")
    op.drop_index(f"ix_{TABLE}_org_id", table_name=TABLE)
    op.drop_index(f"ix_{TABLE}_collaboration_id", table_name=TABLE)
    op.drop_table(TABLE)
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy would drop the table's triggers.
    for column in ("previous_sha256", "sha256", "members"):
        op.drop_column("agreement_versions", column)
