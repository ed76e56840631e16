"""Survivor access links as rows (issue 20): the single-use code's and the session's
hashes, the link's lifetime and its revocation (service/subjects/models.py
`AccessLink`, docs/survivor-pages.md). Tokens issued before this revision have no
row and stop working: a survivor token lives at most seven days.

Revision ID: 0160
Revises: 0150
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0160"
down_revision: str | None = "0150"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_links",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("owner_org_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session_sha256", sa.String(length=64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_org_id"],
            ["organizations.id"],
            name=op.f("fk_access_links_owner_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_access_links_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_links")),
        sa.UniqueConstraint("code_sha256", name=op.f("uq_access_links_code_sha256")),
        sa.UniqueConstraint("session_sha256", name=op.f("uq_access_links_session_sha256")),
    )
    op.create_index(
        op.f("ix_access_links_subject_id"), "access_links", ["subject_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_access_links_subject_id"), table_name="access_links")
    op.drop_table("access_links")
