"""Records requests, their answers' sealed fields, obligations, reviews and
accounting suspensions.

Revision ID: 0070
Revises: 0060
Create Date: 2026-11-23 07:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0070"
down_revision: str | None = "0060"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def _indexes(table: str, *columns: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        for column in columns:
            batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def upgrade() -> None:
    op.create_table(
        "records_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("requester_org_id", sa.Uuid(), nullable=False),
        sa.Column("holder_org_id", sa.Uuid(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("subject_ref", sa.String(length=200), nullable=False),
        sa.Column("categories", _json(), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("legal_basis", sa.String(length=32), nullable=False),
        sa.Column("legal_reference", sa.String(length=500), nullable=True),
        sa.Column("document_sha256", sa.String(length=64), nullable=True),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("preliminary", _json(), nullable=False),
        sa.Column("policy_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        _time("responded_at", nullable=True),
        sa.Column("responded_by", sa.String(length=200), nullable=True),
        sa.Column("responder_roles", _json(), nullable=True),
        sa.Column("response_note", sa.Text(), nullable=True),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.Column("consent_id", sa.Uuid(), nullable=True),
        sa.Column("envelope_id", sa.String(length=64), nullable=True),
        sa.Column("envelope_header", _json(), nullable=True),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        _time("delivered_at", nullable=True),
        _fk("records_requests", "consent_id", "consent_versions"),
        _fk("records_requests", "holder_org_id", "organizations"),
        _fk("records_requests", "requester_org_id", "organizations"),
        _fk("records_requests", "subject_id", "subjects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_requests")),
        sa.UniqueConstraint("envelope_id", name=op.f("uq_records_requests_envelope_id")),
    )
    _indexes("records_requests", "holder_org_id", "requester_org_id", "status")

    op.create_table(
        "records_request_fields",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("ciphertext_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_key_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("key_commitment", sa.LargeBinary(), nullable=False),
        _time("released_at", nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=True),
        _fk("records_request_fields", "request_id", "records_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records_request_fields")),
        sa.UniqueConstraint(
            "request_id", "name", name=op.f("uq_records_request_fields_request_id_name")
        ),
    )
    _indexes("records_request_fields", "request_id")

    op.create_table(
        "obligations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("holder_org_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        _time("created_at"),
        _time("due_at"),
        _time("done_at", nullable=True),
        sa.Column("done_how", sa.String(length=32), nullable=True),
        sa.Column("done_recorded_by", sa.String(length=200), nullable=True),
        _fk("obligations", "holder_org_id", "organizations"),
        _fk("obligations", "request_id", "records_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_obligations")),
    )
    _indexes("obligations", "holder_org_id", "request_id")

    op.create_table(
        "reviews",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("holder_org_id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("released_by", sa.String(length=200), nullable=False),
        _time("created_at"),
        _time("due_at"),
        _time("closed_at", nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("finding", sa.String(length=32), nullable=True),
        sa.Column("survivor_notified", sa.Boolean(), nullable=True),
        sa.Column("reason_not_notified", sa.Text(), nullable=True),
        _fk("reviews", "holder_org_id", "organizations"),
        _fk("reviews", "request_id", "records_requests"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    _indexes("reviews", "holder_org_id", "request_id")

    op.create_table(
        "accounting_suspensions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("request_id", sa.Uuid(), nullable=False),
        sa.Column("requester_org_id", sa.Uuid(), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        _time("created_at"),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _time("until"),
        _fk("accounting_suspensions", "request_id", "records_requests"),
        _fk("accounting_suspensions", "requester_org_id", "organizations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounting_suspensions")),
    )
    _indexes("accounting_suspensions", "request_id")


def downgrade() -> None:
    for table in (
        "accounting_suspensions",
        "reviews",
        "obligations",
        "records_request_fields",
        "records_requests",
    ):
        op.drop_table(table)
