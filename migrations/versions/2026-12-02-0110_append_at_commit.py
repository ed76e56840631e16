"""A release's audit entry is appended when its transaction commits (PostgreSQL).

Until now a delivery locked the append queue and the audit head row with one round
trip, hashed its entry in Python, wrote it with a second, and committed with a
third: the head, which every audited transaction of every application node waits
for, stayed locked across three round trips and the event loop's turns between
them (measured with bench/deliver.py at concurrency 8: 3-8 ms per delivery, which
capped deliveries at one over that hold time however many workers ran).

Now a release stages its entry in `audit_pending`: the canonical bytes before and
after the two values only the head knows, the previous leaf hash and the sequence
number (service/audit/at_commit.py), and the timeline event that cites it. A
deferred constraint trigger fires at COMMIT, in the same transaction: it takes the
append queue and the head row (the lock order of migration 0100: the policy lock,
already held shared by the release, then the queue, then the row), completes and
hashes the entry (SHA-256 of 0x00 || bytes, RFC 9162), writes it, the tree nodes it
completes and the new right edge, writes the citing event, deletes the staged row
and reports the number to the client in a NOTICE. The head is now held only while
the server runs that trigger and flushes the commit: no client round trip.

If the trigger fails the commit fails, and nothing (release, entry, event) is kept.
The trigger is ENABLE ALWAYS, so a session whose replication role is `replica` still
fires it; and a release whose number does not arrive sends no body (the service
answers 503), so a trigger disabled by a superuser releases nothing either.
SQLite is unchanged (one writer; BEGIN IMMEDIATE serializes whole transactions):
there the table exists so that both engines have one schema, and stays unused.

Revision ID: 0110
Revises: 0100
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0110"
down_revision: str | None = "0100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Variables are prefixed v_ so that none can be read as a column of the tables the
# statements name. The right edge (`frontier`) is the JSON list of hex subtree roots,
# largest first, as accord_client.merkle.CompactRange keeps it.
APPEND = """
CREATE FUNCTION accord_append_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_head audit_head%ROWTYPE;
  v_seq bigint;
  v_body bytea;
  v_leaf bytea;
  v_node bytea;
  v_size bigint;
  v_level integer := 0;
  v_frontier jsonb;
BEGIN
  PERFORM pg_advisory_xact_lock(('audit_head'::regclass)::oid::int, 1);  -- the append queue
  SELECT * INTO STRICT v_head FROM audit_head WHERE id = 1 FOR UPDATE;
  v_seq := v_head.size;
  v_body := NEW.body_head
    || convert_to(v_head.last_hash || '","seq":' || v_seq::text, 'UTF8')
    || NEW.body_tail;
  v_leaf := sha256('\\x00'::bytea || v_body);
  INSERT INTO audit_entries
    (seq, at, action, actor_org_id, counterpart_org_id, subject_ref, body, leaf_hash)
  VALUES
    (v_seq, NEW.at, NEW.action, NEW.actor_org_id, NEW.counterpart_org_id,
     NEW.subject_ref, convert_from(v_body, 'UTF8'), v_leaf);
  INSERT INTO audit_nodes (level, idx, hash) VALUES (0, v_seq, v_leaf);
  v_node := v_leaf;
  v_size := v_seq;
  v_frontier := v_head.frontier;
  WHILE v_size % 2 = 1 LOOP
    v_node := sha256(
      '\\x01'::bytea || decode(v_frontier ->> (jsonb_array_length(v_frontier) - 1), 'hex')
      || v_node
    );
    v_frontier := v_frontier - (jsonb_array_length(v_frontier) - 1);
    v_level := v_level + 1;
    v_size := v_size / 2;
    INSERT INTO audit_nodes (level, idx, hash) VALUES (v_level, v_seq >> v_level, v_node);
  END LOOP;
  UPDATE audit_head
    SET size = v_seq + 1,
        last_hash = encode(v_leaf, 'hex'),
        frontier = v_frontier || jsonb_build_array(encode(v_node, 'hex'))
    WHERE id = 1;
  IF NEW.event_referral_id IS NOT NULL THEN
    INSERT INTO referral_events (referral_id, at, event, actor, actor_org_id, detail, audit_seq)
    VALUES (NEW.event_referral_id, NEW.event_at, NEW.event, NEW.event_actor,
            NEW.event_actor_org_id, NEW.event_detail, v_seq);
  END IF;
  DELETE FROM audit_pending WHERE token = NEW.token;
  -- The number reaches the client in the COMMIT's own reply, whatever the role's
  -- or database's default message level.
  PERFORM set_config('client_min_messages', 'notice', true);
  RAISE NOTICE 'accord-audit-append % %', NEW.token, v_seq;
  RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "audit_pending",
        sa.Column("token", sa.Uuid(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor_org_id", sa.Uuid(), nullable=True),
        sa.Column("counterpart_org_id", sa.Uuid(), nullable=True),
        sa.Column("subject_ref", sa.String(length=64), nullable=True),
        sa.Column("body_head", sa.LargeBinary(), nullable=False),
        sa.Column("body_tail", sa.LargeBinary(), nullable=False),
        sa.Column("event_referral_id", sa.Uuid(), nullable=True),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("event", sa.String(length=32), nullable=True),
        sa.Column("event_actor", sa.String(length=200), nullable=True),
        sa.Column("event_actor_org_id", sa.Uuid(), nullable=True),
        sa.Column("event_detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_audit_pending")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(APPEND)
    op.execute(
        "CREATE CONSTRAINT TRIGGER audit_pending_append_at_commit AFTER INSERT ON audit_pending "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION accord_append_at_commit()"
    )
    # Fires whatever the session's replication role: a session running as `replica`
    # skips ordinary triggers, and would otherwise commit a release without its entry.
    op.execute("ALTER TABLE audit_pending ENABLE ALWAYS TRIGGER audit_pending_append_at_commit")


def downgrade() -> None:
    op.drop_table("audit_pending")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION accord_append_at_commit()")
