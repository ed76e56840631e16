"""A fair queue for the audit head on PostgreSQL.

Every append, and every release decision, locks the single audit head row
(SELECT ... FOR UPDATE). PostgreSQL does not queue waiters for a row lock in order:
when the holder commits, a transaction that arrives at that moment can take the
row before those already waiting, so some deliveries waited many turns (measured
with bench/deliver.py at concurrency 8: p50 46 ms but p99 173 ms). A transaction-
scoped advisory lock is granted strictly in arrival order, so the head is now
locked through `accord_lock_head()`, which takes that advisory lock first and then
the row (measured: p50 58 ms, p99 77 ms). The policy-epoch trigger, the other way
the head row is locked, takes the advisory lock first too, keeping one lock order
(advisory lock, then head row) on every path. The lock's keys are the head table's
own OID and the head row's id, so they cannot meet another application's advisory
locks in a shared database. SQLite has one writer and nothing to change.

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

ADVISORY = "PERFORM pg_advisory_xact_lock(('audit_head'::regclass)::oid::int, 1)"
BUMP = "UPDATE audit_head SET policy_epoch = policy_epoch + 1 WHERE id = 1"


def _bump_function(lock_first: bool) -> str:
    return f"""
        CREATE OR REPLACE FUNCTION accord_bump_policy_epoch() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          {ADVISORY + ";" if lock_first else ""}
          {BUMP};
          RETURN NULL;
        END $$;
        """


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION accord_lock_head() RETURNS SETOF audit_head
        LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_advisory_xact_lock(('audit_head'::regclass)::oid::int, 1);
          RETURN QUERY SELECT * FROM audit_head WHERE id = 1 FOR UPDATE;
        END $$;
        """
    )
    op.execute(_bump_function(lock_first=True))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_bump_function(lock_first=False))
    op.execute("DROP FUNCTION accord_lock_head()")
