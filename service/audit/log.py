"""Append to the audit log inside the caller's transaction (DESIGN.md guarantee 3).

If the caller's transaction rolls back, the entry never existed; if the append
fails, the caller's transaction fails with it. Appends are serialized by the head
row (PostgreSQL: `accord_lock_head()`, an advisory lock granted in arrival order and
then SELECT ... FOR UPDATE; SQLite: the write lock that BEGIN IMMEDIATE takes), so
sequence numbers are gap-free, and each append writes the
leaf, the O(log n) subtree nodes it completes, and the new right edge.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accord_client.audit_format import entry_bytes, entry_document
from accord_client.merkle import CompactRange, leaf_hash, node_hash
from sqlalchemy import Executable, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from service.audit.models import AuditEntry, AuditHead, AuditNode
from service.auth.principals import Principal
from service.clock import Clock
from service.db import Base

HEAD_ID = 1


@dataclass(frozen=True)
class AuditEvent:
    """What happened, in identifiers only: never a field value or free text."""

    action: str
    actor: Principal | None
    subject_ref: str | None = None
    counterpart_org_id: uuid.UUID | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    # For events not caused by a staff principal (system jobs, survivor links).
    actor_label: str | None = None


def _actor(event: AuditEvent) -> dict[str, str | None]:
    if event.actor is None:
        return {"principal": event.actor_label or "system", "org": None, "sector": None}
    return {
        "principal": event.actor.label,
        "org": str(event.actor.org_id),
        "sector": event.actor.sector.value,
    }


def _extend(compact: CompactRange, seq: int, leaf: bytes) -> list[dict[str, Any]]:
    """Append one leaf; return the rows of the nodes it completes (the leaf and every
    perfect subtree it closes), with their (level, idx) coordinates."""
    nodes = [{"level": 0, "idx": seq, "hash": leaf}]
    node, size, level = leaf, compact.size, 0
    while size & 1:
        node = node_hash(compact.hashes[-(level + 1)], node)
        level += 1
        size >>= 1
        nodes.append({"level": level, "idx": seq >> level, "hash": node})
    compact.append(leaf)
    return nodes


@dataclass
class HeadState:
    """The locked head row as this transaction sees it; `append` keeps it current."""

    size: int
    last_hash: str
    frontier: list[str]
    policy_epoch: int


@dataclass(frozen=True)
class Appended:
    """What an append wrote that its caller may need: the entry's number and time."""

    seq: int
    at: datetime


_HEAD_KEY = "accord.audit_head"
# Core statements on the tables themselves (no ORM identity map, bulk or
# unit-of-work machinery: this runs in every audited request).
_ENTRIES = Base.metadata.tables[AuditEntry.__tablename__]
_NODES = Base.metadata.tables[AuditNode.__tablename__]
_HEAD = Base.metadata.tables[AuditHead.__tablename__]
_HEAD_STATE = (_HEAD.c.size, _HEAD.c.last_hash, _HEAD.c.frontier, _HEAD.c.policy_epoch)
_LOCK_HEAD: dict[str, Executable] = {
    # SQLite: the transaction's BEGIN IMMEDIATE already holds the one write lock.
    "sqlite": select(*_HEAD_STATE).where(_HEAD.c.id == HEAD_ID),
    # PostgreSQL: a fair queue (an advisory lock granted in arrival order), then the
    # row itself (migration 0100).
    "postgresql": text(
        "SELECT size, last_hash, frontier, policy_epoch FROM accord_lock_head()"
    ).columns(*_HEAD_STATE),
}
_INSERT_ENTRY = insert(_ENTRIES)
_INSERT_NODES = insert(_NODES)
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == HEAD_ID)


async def lock_head(session: AsyncSession) -> HeadState:
    """The head row, locked until the transaction ends. Read once per transaction:
    a second call in the same transaction returns the state already read (and kept
    current by `append`), without another round trip."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_HEAD_KEY)
    if cached is not None and transaction is not None and cached[0] is transaction:
        head: HeadState = cached[1]
        return head
    dialect = session.sync_session.get_bind().dialect.name
    row = (await session.execute(_LOCK_HEAD[dialect])).one()
    head = HeadState(row.size, row.last_hash, list(row.frontier), row.policy_epoch)
    session.info[_HEAD_KEY] = (session.sync_session.get_transaction(), head)
    return head


def forget_head(session: Session) -> None:
    """Make the next `lock_head` in this transaction read the row again: database
    triggers moved a column `append` does not keep in memory (the policy epoch)."""
    session.info.pop(_HEAD_KEY, None)


def build_entry(
    compact: CompactRange, last_hash: str, event: AuditEvent, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The row of the next entry after a log whose right edge is `compact` and whose
    last leaf hash (hex) is `last_hash`, and the rows of the tree nodes it completes;
    advances `compact`. Pure: `append` writes the result, and the benchmark's bulk
    seeding (bench/audit_seed.py) uses it too, so a seeded log is what appends would
    write."""
    seq = compact.size
    document = entry_document(
        seq=seq,
        at=now,
        action=event.action,
        actor=_actor(event),
        subject=event.subject_ref,
        counterpart=str(event.counterpart_org_id) if event.counterpart_org_id else None,
        details=event.details,
        prev=last_hash,
    )
    body = entry_bytes(document)
    leaf = leaf_hash(body)
    nodes = _extend(compact, seq, leaf)
    entry = {
        "seq": seq,
        "at": now,
        "action": event.action,
        "actor_org_id": event.actor.org_id if event.actor else None,
        "counterpart_org_id": event.counterpart_org_id,
        "subject_ref": event.subject_ref,
        "body": body.decode("utf-8"),
        "leaf_hash": leaf,
    }
    return entry, nodes


async def append(session: AsyncSession, event: AuditEvent, *, clock: Clock) -> Appended:
    """Write the entry, the nodes it completes and the new head with three Core
    statements; the locked head state is kept current for the next append."""
    head = await lock_head(session)
    compact = CompactRange(head.size, [bytes.fromhex(h) for h in head.frontier])
    now = clock.now()
    entry, nodes = build_entry(compact, head.last_hash, event, now)
    await session.execute(_INSERT_ENTRY, entry)
    await session.execute(_INSERT_NODES, nodes)
    size, last_hash = compact.size, entry["leaf_hash"].hex()
    frontier = [h.hex() for h in compact.hashes]
    await session.execute(_MOVE_HEAD, {"size": size, "last_hash": last_hash, "frontier": frontier})
    head.size, head.last_hash, head.frontier = size, last_hash, frontier
    return Appended(seq=entry["seq"], at=now)


def disclosure_recipient(entry: AuditEntry) -> uuid.UUID | None:
    """Who received a disclosure. A delivery's entry names the discloser (the
    sender or holder) as counterpart, so that organization's auditors see it, and
    the recipient in its details; older entries name the recipient as counterpart."""
    recipient = json.loads(entry.body).get("details", {}).get("recipient_org")
    if isinstance(recipient, str):
        return uuid.UUID(recipient)
    return entry.counterpart_org_id


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """The exported form: the canonical document itself."""
    document: dict[str, Any] = json.loads(entry.body)
    return document
