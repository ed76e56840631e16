"""The policy lock and a fair queue in front of the audit head (PostgreSQL).

Until now every release decision locked the single audit head row from its first
read to its commit, so that decisions are ordered against every change to a
release's inputs (API.md "Ordering"); deliveries ran one at a time across all
application nodes, and PostgreSQL does not queue waiters for a row lock in order
(a transaction arriving as the holder commits could overtake those waiting; measured
with bench/deliver.py at concurrency 8: p50 46 ms, p99 173 ms).

Two transaction-scoped advisory locks, keyed by the head table's own OID (so they
cannot meet another application's advisory locks in a shared database):

- the policy lock (key 0): a release decision holds it shared from before it reads
  anything until it commits; every other transaction that locks the head, and the
  policy-epoch trigger (every change to organizations, memberships, agreements,
  organization rules), holds it exclusively. Decisions therefore still fall wholly
  before or wholly after each such change, by one mechanism, while decisions run
  side by side;
- the append queue (key 1): taken right before the head row by every path; PostgreSQL
  grants advisory locks in arrival order, so appends are served first come, first
  served.

Lock order everywhere: policy lock, then append queue, then the head row.
`accord_lock_head()` takes all three (exclusive policy lock), `accord_lock_head_to_append()`
the last two (for a transaction already holding the policy lock shared), and
`accord_share_policy()` the shared policy lock, returning the policy epoch read after
it is held. SQLite has one writer (every transaction begins IMMEDIATE) and nothing to
change.

Revision ID: 0100
Revises: 0090
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0100"
down_revision: str | None = "0090"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POLICY = "('audit_head'::regclass)::oid::int, 0"
QUEUE = "('audit_head'::regclass)::oid::int, 1"
LOCK_HEAD_ROW = "RETURN QUERY SELECT * FROM audit_head WHERE id = 1 FOR UPDATE"
BUMP = "UPDATE audit_head SET policy_epoch = policy_epoch + 1 WHERE id = 1"
EPOCH = "RETURN (SELECT policy_epoch FROM audit_head WHERE id = 1)"


def _function(name: str, returns: str, body: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS {returns} LANGUAGE plpgsql AS $$\n"
        f"BEGIN\n{body}\nEND $$;"
    )


def _bump(locks: bool) -> str:
    taken = (
        f"PERFORM pg_advisory_xact_lock({POLICY});\nPERFORM pg_advisory_xact_lock({QUEUE});\n"
        if locks
        else ""
    )
    return _function("accord_bump_policy_epoch", "trigger", f"{taken}{BUMP};\nRETURN NULL;")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        _function(
            "accord_lock_head",
            "SETOF audit_head",
            f"PERFORM pg_advisory_xact_lock({POLICY});\n"
            f"PERFORM pg_advisory_xact_lock({QUEUE});\n{LOCK_HEAD_ROW};",
        )
    )
    op.execute(
        _function(
            "accord_lock_head_to_append",
            "SETOF audit_head",
            f"PERFORM pg_advisory_xact_lock({QUEUE});\n{LOCK_HEAD_ROW};",
        )
    )
    op.execute(
        _function(
            "accord_share_policy",
            "bigint",
            f"PERFORM pg_advisory_xact_lock_shared({POLICY});\n{EPOCH};",
        )
    )
    op.execute(_bump(locks=True))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_bump(locks=False))
    for name in ("accord_share_policy", "accord_lock_head_to_append", "accord_lock_head"):
        op.execute(f"DROP FUNCTION {name}()")
