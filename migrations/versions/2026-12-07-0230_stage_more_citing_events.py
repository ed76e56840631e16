"""A staged entry may carry several timeline events that cite it (issue 26).

A referral's send writes its "sent" timeline event and one event per recipient
warning (`recipient_not_accepting`, `recipient_limited_hours`), all citing the
`referral.sent` audit entry (docs/referrals.md). The commit-time trigger of
migration 0110 writes at most one citing event, so a send appended its entry at once
(`append`), holding the append queue and the audit head from that statement to its
commit, and took the policy lock exclusively for its whole transaction: while one
send ran, no delivery could start (docs/benchmarks/soak.md). Now a send stages its
entry like a delivery, and `audit_pending.event_also` (a JSON list of event names,
NULL for none) names the further events: the trigger writes one `referral_events`
row per name after the citing one, in list order, for the same referral, with the
same time, actor and actor organization, no detail, citing the same entry. The
rest of the function is migration 0110's, unchanged.

SQLite gets the column too (one schema on both engines); there `stage` appends at
once and writes the same rows itself.

Revision ID: 0230
Revises: 0220
Create Date: 2026-12-07 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0230"
down_revision: str | None = "0220"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migration 0110's function, with two places for this migration's additions (empty
# for the downgrade, which so restores 0110's function exactly).
FUNCTION = """
CREATE OR REPLACE FUNCTION accord_append_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_head audit_head%ROWTYPE;
  v_seq bigint;
  v_body bytea;
  v_leaf bytea;
  v_node bytea;
  v_size bigint;
  v_level integer := 0;
  v_frontier jsonb;{declare}
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
            NEW.event_actor_org_id, NEW.event_detail, v_seq);{also}
  END IF;
  DELETE FROM audit_pending WHERE token = NEW.token;
  -- The number reaches the client in the COMMIT's own reply, whatever the role's
  -- or database's default message level.
  PERFORM set_config('client_min_messages', 'notice', true);
  RAISE NOTICE 'accord-audit-append % %', NEW.token, v_seq;
  RETURN NULL;
END $$;
"""

# One row per name, in list order (one INSERT each, so the rows' ids follow it).
ALSO = """
    IF NEW.event_also IS NOT NULL THEN
      FOR v_name IN
        SELECT value FROM jsonb_array_elements_text(NEW.event_also::jsonb)
          WITH ORDINALITY ORDER BY ordinality
      LOOP
        INSERT INTO referral_events
          (referral_id, at, event, actor, actor_org_id, detail, audit_seq)
        VALUES (NEW.event_referral_id, NEW.event_at, v_name, NEW.event_actor,
                NEW.event_actor_org_id, NULL, v_seq);
      END LOOP;
    END IF;"""


def upgrade() -> None:
    op.add_column("audit_pending", sa.Column("event_also", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION.format(declare="\n  v_name text;", also=ALSO))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION.format(declare="", also=""))
    op.drop_column("audit_pending", "event_also")
