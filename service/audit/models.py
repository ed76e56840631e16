"""The audit log tables. The database refuses UPDATE and DELETE on entries and
tree nodes (triggers created by the migration); only the single head row moves."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.db.engine import Base, JSONType, UTCDateTime

# On PostgreSQL, migration 0180 adds to `audit_entries` two stored generated columns
# (`prev_seq`, `prev_hash`) and a foreign key from them to (seq, leaf_hash): the
# database computes and checks them, the service never reads or writes them.
UNMODELLED = frozenset(
    {"prev_seq", "prev_hash", "fk_audit_entries_prev_entry", "uq_audit_entries_seq_leaf_hash"}
) | {
    # Migration 0220 (PostgreSQL): a disclosure's recipient and legal basis, generated
    # from its body for collaboration reports (service/reports/gather.py).
    "disclosure_recipient",
    "disclosure_basis",
    "ix_audit_entries_disclosures",
}


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor_org_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    counterpart_org_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    subject_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    # The canonical bytes (accord_client.audit_format), exactly as hashed.
    body: Mapped[str] = mapped_column(Text)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditNode(Base):
    """Roots of the perfect subtrees: level 0 are leaves; (level, idx) covers leaves
    [idx * 2**level, (idx + 1) * 2**level). Proofs read O(log n) of them."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditHead(Base):
    """One row (id = 1): the tree size, the last leaf hash and the right edge of the
    tree. Locked for update by every append (PostgreSQL), which makes the numbering
    gap-free; SQLite's write lock (BEGIN IMMEDIATE) does the same there."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    frontier: Mapped[list[str]] = mapped_column(JSONType)
    # Moved by database triggers on every change to a release's non-consent inputs
    # (migration 0090); service/disclosures/inputs.py reuses those inputs while it stands.
    policy_epoch: Mapped[int] = mapped_column(BigInteger, server_default="0")


class AuditCheckpoint(Base):
    """Every checkpoint the service signed periodically, kept so that anyone can
    fetch old checkpoints and check the log only grew."""

    __tablename__ = "audit_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditPending(Base):
    """An entry to append when its transaction commits (PostgreSQL; migration 0110).

    A release stages its entry here, as the canonical bytes around the two values
    only the head knows (`prev` and `seq`); a deferred trigger appends it at COMMIT
    (service/audit/at_commit.py) and deletes this row, so the table is empty outside
    open transactions. Optionally carries the referral timeline event that cites the
    entry, and further events of the same referral (`event_also`), written by the
    same trigger with the entry's number."""

    __tablename__ = "audit_pending"

    token: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(64))
    actor_org_id: Mapped[uuid.UUID | None]
    counterpart_org_id: Mapped[uuid.UUID | None]
    subject_ref: Mapped[str | None] = mapped_column(String(64))
    body_head: Mapped[bytes] = mapped_column(LargeBinary)
    body_tail: Mapped[bytes] = mapped_column(LargeBinary)
    event_referral_id: Mapped[uuid.UUID | None]
    event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    event: Mapped[str | None] = mapped_column(String(32))
    event_actor: Mapped[str | None] = mapped_column(String(200))
    event_actor_org_id: Mapped[uuid.UUID | None]
    event_detail: Mapped[str | None] = mapped_column(Text)
    # Further events of the same referral citing the entry, after `event` (a JSON list
    # of names; same time, actor and organization, no detail): migration 0230.
    event_also: Mapped[str | None] = mapped_column(Text)
