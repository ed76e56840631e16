"""Every protective trigger fires whatever the session's replication role (PostgreSQL).

An ordinary trigger does not fire in a session whose `session_replication_role` is
`replica` (what logical-replication apply and some restore tools use): there the
append-only and immutability triggers of the audit log, the consent versions and
the referral timeline would let UPDATE and DELETE through, and the policy-epoch
triggers would let a change to organizations, memberships, agreements or rules go
unseen by the release-input cache (service/disclosures/inputs.py). DESIGN.md section 7
asks for `ENABLE ALWAYS`; migration 0110's commit-time append trigger already is.
Setting the role needs a superuser, who could also drop the triggers: this closes
the quiet way round them, not the loud one (docs/threat-model.md).

Revision ID: 0120
Revises: 0110
Create Date: 2026-12-02 04:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0120"
down_revision: str | None = "0110"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> its protective triggers (migrations 0020, 0030, 0060 and 0090).
TRIGGERS: dict[str, tuple[str, ...]] = {
    "audit_entries": ("audit_entries_no_change", "audit_entries_no_truncate"),
    "audit_nodes": ("audit_nodes_no_change", "audit_nodes_no_truncate"),
    "audit_head": ("audit_head_no_delete",),
    "audit_checkpoints": ("audit_checkpoints_no_change", "audit_checkpoints_no_truncate"),
    "consent_versions": ("consent_versions_immutable", "consent_versions_no_truncate"),
    "consent_revocations": ("consent_revocations_immutable", "consent_revocations_no_truncate"),
    "consent_givers": ("consent_givers_immutable", "consent_givers_no_truncate"),
    "alleged_abusers": ("alleged_abusers_immutable", "alleged_abusers_no_truncate"),
    "referral_events": ("referral_events_append_only", "referral_events_no_truncate"),
    "organizations": ("organizations_policy_epoch",),
    "collaboration_members": ("collaboration_members_policy_epoch",),
    "agreement_versions": ("agreement_versions_policy_epoch",),
    "organization_policies": ("organization_policies_policy_epoch",),
}


def _set(mode: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no replication role: its triggers always fire
    for table, triggers in TRIGGERS.items():
        for trigger in triggers:
            op.execute(f"ALTER TABLE {table} ENABLE {mode}TRIGGER {trigger}")


def upgrade() -> None:
    _set("ALWAYS ")


def downgrade() -> None:
    _set("")
