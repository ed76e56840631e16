"""Erased subjects (issue 23, "Erasure"): `subjects.erased_at`, `erased_by` and
`erase_reason` (a code). Once `erased_at` is set nothing new is created for the
subject (service/subjects/erasure.py, docs/erasure.md). Plain ADD COLUMN on both
engines; no data moves.

Revision ID: 0200
Revises: 0180
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0200"
down_revision: str | None = "0180"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subjects", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("subjects", sa.Column("erased_by", sa.String(200), nullable=True))
    op.add_column("subjects", sa.Column("erase_reason", sa.String(32), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy would drop the table's triggers.
    for column in ("erase_reason", "erased_by", "erased_at"):
        op.drop_column("subjects", column)
