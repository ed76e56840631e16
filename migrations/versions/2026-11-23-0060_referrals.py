"""Referrals: metadata, sealed fields (shreddable), and an append-only timeline.

Revision ID: 0060
Revises: 0050
Create Date: 2026-11-23 06:16:44
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0060"
down_revision: str | None = "0050"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MESSAGE = "the referral timeline is append-only"


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("sender_org_id", sa.Uuid(), nullable=False),
        sa.Column("recipient_org_id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("services_requested", _json(), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("envelope_id", sa.String(length=64), nullable=False),
        sa.Column("envelope_header", _json(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("sender_roles", _json(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("decline_reason", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("shred_reason", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consent_versions.id"],
            name=op.f("fk_referrals_consent_id_consent_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["recipient_org_id"],
            ["organizations.id"],
            name=op.f("fk_referrals_recipient_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["sender_org_id"],
            ["organizations.id"],
            name=op.f("fk_referrals_sender_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_referrals_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
        sa.UniqueConstraint("envelope_id", name=op.f("uq_referrals_envelope_id")),
        sa.UniqueConstraint(
            "sender_org_id",
            "idempotency_key",
            name=op.f("uq_referrals_sender_org_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referrals_consent_id"), ["consent_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_referrals_recipient_org_id"), ["recipient_org_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_referrals_sender_org_id"), ["sender_org_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_referrals_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_referrals_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "referral_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_org_id", sa.Uuid(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["actor_org_id"],
            ["organizations.id"],
            name=op.f("fk_referral_events_actor_org_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_referral_events_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_events")),
    )
    with op.batch_alter_table("referral_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_events_referral_id"), ["referral_id"], unique=False
        )

    op.create_table(
        "referral_fields",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("ciphertext_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_key_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("key_commitment", sa.LargeBinary(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referrals.id"], name=op.f("fk_referral_fields_referral_id_referrals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_fields")),
        sa.UniqueConstraint(
            "referral_id", "name", name=op.f("uq_referral_fields_referral_id_name")
        ),
    )
    with op.batch_alter_table("referral_fields", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referral_fields_referral_id"), ["referral_id"], unique=False
        )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION referral_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
            END $$;
            """
        )
        op.execute(
            "CREATE TRIGGER referral_events_append_only BEFORE UPDATE OR DELETE ON referral_events "
            "FOR EACH ROW EXECUTE FUNCTION referral_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER referral_events_no_truncate BEFORE TRUNCATE ON referral_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION referral_events_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER referral_events_no_{event.lower()} BEFORE {event} "
                f"ON referral_events BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("referral_fields", "referral_events", "referrals"):
            op.execute(f"DROP TABLE {table} CASCADE")
        op.execute("DROP FUNCTION referral_events_append_only()")
        return
    with op.batch_alter_table("referral_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_fields_referral_id"))

    op.drop_table("referral_fields")
    with op.batch_alter_table("referral_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_events_referral_id"))

    op.drop_table("referral_events")
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_subject_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_status"))
        batch_op.drop_index(batch_op.f("ix_referrals_sender_org_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_recipient_org_id"))
        batch_op.drop_index(batch_op.f("ix_referrals_consent_id"))

    op.drop_table("referrals")
