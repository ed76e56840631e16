"""An organization's events are numbered when their transaction commits (PostgreSQL).

Until now `emit` (service/events/outbox.py) took an event's number from its
organization's `event_counters` row with an upsert, and that row stayed locked from
the emit to the end of the transaction, so that numbers follow the commit order (a
feed reader must never see n+1 committed while n is still to come). With few
organizations every event-emitting transaction (sends, first deliveries,
revocations, records requests...) waited for the one before to commit, its audit
append included (bench/soak.py: `Lock:transactionid` on that upsert, 36 ms a call).

Now `emit` writes the event with a placeholder number, the negation of a value from
the sequence `event_seq_placeholders` (negative and unique, so `events.seq` stays
NOT NULL and `(org_id, seq)` unique without any lock; its delivery rows get the same
value), and a deferred constraint trigger numbers it at COMMIT, as migration 0110
appends an audit entry: it takes the audit append queue, then upserts the
organization's counter row and takes the next number, and sets it on the event and
on its `webhook_deliveries` rows (by `event_id`: indexed here). The counter row is
held only while the commit runs. A rolled-back transaction never fires the trigger
and so consumes no number; a commit whose trigger fails keeps nothing. An event
numbered already (positive: a caller that holds the append queue and numbers at
once, service/events/outbox.py) is skipped, and so is one deleted before its commit.

Why the queue first: two commit-time triggers now take row locks, the audit
append's (the head row) and this one (counter rows), and a transaction may fire
either first (in the order it staged its entry and emitted its events). If each
took only its own row, a transaction holding the head and waiting for a counter
row could wait for one holding that counter row and waiting for the head: a
deadlock. Both take the append queue (`pg_advisory_xact_lock(('audit_head'::
regclass)::oid::int, 1)`, the same key) before any row, and hold it to the end of
the transaction: so a transaction takes a counter row or the head only while
holding the queue, at most one transaction holds it at once, and no one waits for
a row that a queue waiter holds (service/audit/ordering.py, the lock order).

The trigger is ENABLE ALWAYS, so a session whose replication role is `replica`
still numbers its events. SQLite is unchanged: `emit` numbers at once there
(BEGIN IMMEDIATE serializes whole transactions), but gets the index too (one schema
on both engines). Downgrade restores the old behaviour: it drops the trigger, the
function, the sequence and the index.

Revision ID: 0240
Revises: 0230
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0240"
down_revision: str | None = "0230"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLACEHOLDERS = "event_seq_placeholders"

# Variables are prefixed v_ so that none can be read as a column.
NUMBER = """
CREATE FUNCTION accord_number_event_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_seq bigint;
BEGIN
  -- Deleted, or numbered already, before the commit: nothing to number.
  PERFORM 1 FROM events WHERE id = NEW.id AND seq < 0;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  PERFORM pg_advisory_xact_lock(('audit_head'::regclass)::oid::int, 1);  -- the append queue
  INSERT INTO event_counters AS c (org_id, last_seq) VALUES (NEW.org_id, 1)
    ON CONFLICT (org_id) DO UPDATE SET last_seq = c.last_seq + 1
    RETURNING c.last_seq INTO v_seq;
  UPDATE events SET seq = v_seq WHERE id = NEW.id;
  UPDATE webhook_deliveries SET event_seq = v_seq WHERE event_id = NEW.id;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_index(
        op.f("ix_webhook_deliveries_event_id"), "webhook_deliveries", ["event_id"], unique=False
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"CREATE SEQUENCE {PLACEHOLDERS} AS bigint")
    op.execute(NUMBER)
    op.execute(
        "CREATE CONSTRAINT TRIGGER events_number_at_commit AFTER INSERT ON events "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.seq < 0) "
        "EXECUTE FUNCTION accord_number_event_at_commit()"
    )
    # Fires whatever the session's replication role (as migration 0110's trigger).
    op.execute("ALTER TABLE events ENABLE ALWAYS TRIGGER events_number_at_commit")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER events_number_at_commit ON events")
        op.execute("DROP FUNCTION accord_number_event_at_commit()")
        op.execute(f"DROP SEQUENCE {PLACEHOLDERS}")
    op.drop_index(op.f("ix_webhook_deliveries_event_id"), table_name="webhook_deliveries")
