"""Principals an organization can cut off, and tokens revoked one by one (issue 22,
item 1; service/organizations/models.py `PrincipalStatus`, `PrincipalSighting`,
`RevokedToken`; docs/threat-model.md "People and roles"). All three are read on
every authenticated request; nothing existing changes.

Revision ID: 0170
Revises: 0160
Create Date: 2026-12-07 07:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0170"
down_revision: str | None = "0160"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["org_id"], ["organizations.id"], name=op.f(f"fk_{table}_org_id_organizations")
    )


def upgrade() -> None:
    op.create_table(
        "principal_status",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=False),
        _org_fk("principal_status"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principal_status")),
        sa.UniqueConstraint("org_id", "subject", name=op.f("uq_principal_status_org_id_subject")),
    )
    op.create_table(
        "principal_sightings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_token_id", sa.String(length=255), nullable=False),
        _org_fk("principal_sightings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_principal_sightings")),
        sa.UniqueConstraint(
            "org_id", "subject", name=op.f("uq_principal_sightings_org_id_subject")
        ),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("token_id", sa.String(length=255), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(length=255), nullable=False),
        sa.Column("keep_until", sa.DateTime(timezone=True), nullable=False),
        _org_fk("revoked_tokens"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revoked_tokens")),
        sa.UniqueConstraint("org_id", "token_id", name=op.f("uq_revoked_tokens_org_id_token_id")),
    )
    op.create_index(
        op.f("ix_revoked_tokens_keep_until"), "revoked_tokens", ["keep_until"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_revoked_tokens_keep_until"), table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
    op.drop_table("principal_sightings")
    op.drop_table("principal_status")
