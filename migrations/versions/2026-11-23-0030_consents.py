"""Consent grants: immutable versions, irreversible revocations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 02:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMMUTABLE = ("consent_versions", "consent_revocations")
MESSAGE = "consent records are immutable"


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "consent_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("supersedes", sa.Uuid(), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("owner_org_id", sa.Uuid(), nullable=False),
        sa.Column("recipients", _json(), nullable=False),
        sa.Column("purposes", _json(), nullable=False),
        sa.Column("categories", _json(), nullable=False),
        sa.Column("fields", _json(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=35), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("witness_role", sa.String(length=32), nullable=True),
        sa.Column("given_by", sa.String(length=32), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_org_id"],
            ["organizations.id"],
            name=op.f("fk_consent_versions_owner_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_consent_versions_subject_id_subjects")
        ),
        sa.ForeignKeyConstraint(
            ["supersedes"],
            ["consent_versions.id"],
            name=op.f("fk_consent_versions_supersedes_consent_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_versions")),
        sa.UniqueConstraint(
            "grant_id", "version", name=op.f("uq_consent_versions_grant_id_version")
        ),
    )
    for column in ("grant_id", "subject_id", "owner_org_id"):
        op.create_index(op.f(f"ix_consent_versions_{column}"), "consent_versions", [column])
    op.create_table(
        "consent_revocations",
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("grant_id", name=op.f("pk_consent_revocations")),
    )
    op.create_table(
        "consent_notifications",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_org_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["recipient_org_id"],
            ["organizations.id"],
            name=op.f("fk_consent_notifications_recipient_org_id_organizations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_notifications")),
        sa.UniqueConstraint(
            "grant_id",
            "recipient_org_id",
            "event",
            name=op.f("uq_consent_notifications_grant_id_recipient_org_id_event"),
        ),
    )
    op.create_index(
        op.f("ix_consent_notifications_grant_id"), "consent_notifications", ["grant_id"]
    )
    op.create_index(
        op.f("ix_consent_notifications_recipient_org_id"),
        "consent_notifications",
        ["recipient_org_id"],
    )
    op.create_table(
        "consent_reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("grant_id", sa.Uuid(), nullable=False),
        sa.Column("owner_org_id", sa.Uuid(), nullable=False),
        sa.Column("collaboration_id", sa.Uuid(), nullable=False),
        sa.Column("agreement_version", sa.Integer(), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_org_id"],
            ["organizations.id"],
            name=op.f("fk_consent_reviews_owner_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["collaboration_id"],
            ["collaborations.id"],
            name=op.f("fk_consent_reviews_collaboration_id_collaborations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_reviews")),
    )
    op.create_index(op.f("ix_consent_reviews_grant_id"), "consent_reviews", ["grant_id"])
    op.create_index(op.f("ix_consent_reviews_owner_org_id"), "consent_reviews", ["owner_org_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION consent_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END $$;
            """
        )
        for table in IMMUTABLE:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION consent_immutable()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION consent_immutable()"
            )
    else:
        for table in IMMUTABLE:
            for event in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
                )


def downgrade() -> None:
    op.drop_table("consent_reviews")
    op.drop_table("consent_notifications")
    if op.get_bind().dialect.name == "postgresql":
        for table in IMMUTABLE:
            op.execute(f"DROP TABLE {table} CASCADE")
        op.execute("DROP FUNCTION consent_immutable()")
        return
    for table in IMMUTABLE:
        op.drop_table(table)
