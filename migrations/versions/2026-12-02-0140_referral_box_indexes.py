"""The referral boxes read a page from an index instead of sorting the whole box.

`GET /v1/referrals?box=sent|received` lists an organization's referrals newest
first (`created_at`, then `id`), a page at a time. With an index on the
organization alone, every page sorted all of that organization's referrals: a
30-minute mixed-workload run (bench/soak.py) slowed as the boxes grew. The two
indexes below serve each page in index order, and replace the single-column
indexes on `sender_org_id` and `recipient_org_id`, whose lookups they also serve
(a leading column).

Revision ID: 0140
Revises: 0130
Create Date: 2026-12-02 17:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0140"
down_revision: str | None = "0130"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_referrals_sender_box", "referrals", ["sender_org_id", "created_at", "id"])
    op.create_index(
        "ix_referrals_recipient_box", "referrals", ["recipient_org_id", "created_at", "id"]
    )
    op.drop_index("ix_referrals_sender_org_id", table_name="referrals")
    op.drop_index("ix_referrals_recipient_org_id", table_name="referrals")


def downgrade() -> None:
    op.create_index("ix_referrals_recipient_org_id", "referrals", ["recipient_org_id"])
    op.create_index("ix_referrals_sender_org_id", "referrals", ["sender_org_id"])
    op.drop_index("ix_referrals_recipient_box", table_name="referrals")
    op.drop_index("ix_referrals_sender_box", table_name="referrals")
