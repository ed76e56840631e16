"""Consent givers and alleged abusers: who gave a grant (as an opaque reference), and
the references an organization recorded as a subject's alleged abuser; both immutable.

Revision ID: 0050
Revises: 0003
Create Date: 2026-11-23 02:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0050"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMMUTABLE = ("consent_givers", "alleged_abusers")
MESSAGE = "consent records are immutable"


def upgrade() -> None:
    op.create_table(
        "consent_givers",
        sa.Column("consent_id", sa.Uuid(), nullable=False),
        sa.Column("giver_ref", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["consent_versions.id"],
            name=op.f("fk_consent_givers_consent_id_consent_versions"),
        ),
        sa.PrimaryKeyConstraint("consent_id", name=op.f("pk_consent_givers")),
    )
    op.create_table(
        "alleged_abusers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("person_ref", sa.String(length=64), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_alleged_abusers_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alleged_abusers")),
        sa.UniqueConstraint(
            "subject_id", "person_ref", name=op.f("uq_alleged_abusers_subject_id_person_ref")
        ),
    )
    op.create_index(op.f("ix_alleged_abusers_subject_id"), "alleged_abusers", ["subject_id"])
    if op.get_bind().dialect.name == "postgresql":
        # consent_immutable() comes from revision 0003.
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
    if op.get_bind().dialect.name == "postgresql":
        for table in IMMUTABLE:
            op.execute(f"DROP TABLE {table} CASCADE")
        return
    for table in IMMUTABLE:
        op.drop_table(table)
