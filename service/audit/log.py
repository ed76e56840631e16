"""Append to the audit log inside the caller's transaction (DESIGN.md guarantee 3).

If the caller's transaction rolls back, the entry never existed; if the append
fails, the caller's transaction fails with it. Appends are serialized by the head
row (PostgreSQL: the append queue, an advisory lock granted in arrival order, then
SELECT ... FOR UPDATE, both held to the commit; SQLite: the write lock that BEGIN
IMMEDIATE takes), so sequence numbers are gap-free, and each append writes the
leaf, the O(log n) subtree nodes it completes, and the new right edge. On
PostgreSQL `lock_head` also holds the policy lock exclusively, unless the
transaction holds it shared to release (`share_policy`; service/disclosures/decide.py).
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
from sqlalchemy import Executable, Table, bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from service.audit.models import AuditEntry, AuditHead, AuditNode
from service.auth.principals import Principal
from service.clock import Clock
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base

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
_SHARED_KEY = "accord.policy_shared"
# Core statements on the tables themselves (no ORM identity map, bulk or
# unit-of-work machinery: this runs in every audited request).
_ENTRIES = Base.metadata.tables[AuditEntry.__tablename__]
_NODES = Base.metadata.tables[AuditNode.__tablename__]
_HEAD = Base.metadata.tables[AuditHead.__tablename__]
_HEAD_STATE = (_HEAD.c.size, _HEAD.c.last_hash, _HEAD.c.frontier, _HEAD.c.policy_epoch)
_SQLITE_HEAD = select(*_HEAD_STATE).where(_HEAD.c.id == HEAD_ID)


def _pg_head(function: str) -> Executable:
    return text(
        f"SELECT size, last_hash, frontier, policy_epoch FROM {function}()"  # noqa: S608 - a constant
    ).columns(*_HEAD_STATE)


# (dialect, holds the policy lock shared) -> the statement that locks the head. On
# SQLite the transaction's BEGIN IMMEDIATE already holds the one write lock. On
# PostgreSQL (migration 0100): the policy lock exclusively, the append queue, then
# the row; or, in a transaction holding the policy lock shared, the last two.
# Run on the driver (service/db/direct.py): every audited request runs these.
_LOCK_HEAD: dict[tuple[str, bool], DirectStatement] = {
    ("sqlite", False): DirectStatement(_SQLITE_HEAD),
    ("sqlite", True): DirectStatement(_SQLITE_HEAD),
    ("postgresql", False): DirectStatement(_pg_head("accord_lock_head")),
    ("postgresql", True): DirectStatement(_pg_head("accord_lock_head_to_append")),
}
_SHARE_POLICY: dict[str, DirectStatement] = {
    "sqlite": DirectStatement(select(_HEAD.c.policy_epoch).where(_HEAD.c.id == HEAD_ID)),
    "postgresql": DirectStatement(
        text("SELECT accord_share_policy() AS policy_epoch").columns(_HEAD.c.policy_epoch)
    ),
}
_ENTRY_KEYS = (
    "seq",
    "at",
    "action",
    "actor_org_id",
    "counterpart_org_id",
    "subject_ref",
    "body",
    "leaf_hash",
)
_INSERT_ENTRY = DirectStatement(insert(_ENTRIES), keys=_ENTRY_KEYS)
_INSERT_NODE = DirectStatement(insert(_NODES), keys=("level", "idx", "hash"))
_MOVE_HEAD = DirectStatement(
    update(_HEAD).where(_HEAD.c.id == HEAD_ID), keys=("size", "last_hash", "frontier")
)


@dataclass(frozen=True)
class CitingRow:
    """A row of another table that cites the entry it is appended with: its
    `audit_seq` column is set to the entry's number (a referral's timeline event).
    On PostgreSQL it is written in the append's one statement, so the head is held
    for one round trip fewer."""

    table: Table
    values: Mapping[str, Any]


_PG_APPEND_SQL = """
WITH entry AS (
    INSERT INTO audit_entries
        (seq, at, action, actor_org_id, counterpart_org_id, subject_ref, body, leaf_hash)
    VALUES
        (:seq, :at, :action, :actor_org_id, :counterpart_org_id, :subject_ref, :body, :leaf_hash)
), nodes AS (
    INSERT INTO audit_nodes (level, idx, hash)
    SELECT * FROM unnest(
        CAST(:levels AS integer[]), CAST(:idxs AS bigint[]), CAST(:hashes AS bytea[])
    )
){citing}
UPDATE audit_head SET size = :size, last_hash = :last_hash, frontier = :frontier
WHERE id = :head_id
"""
# (dialect, citing table, its columns) -> the statement, built once each.
_APPEND_STATEMENTS: dict[tuple[str, str, tuple[str, ...]], DirectStatement] = {}


def _append_statement(
    dialect: str, table: Table | None, columns: tuple[str, ...]
) -> DirectStatement:
    """PostgreSQL: the entry, its nodes (three parallel arrays), the citing row if any
    and the head, in one statement. SQLite: the citing row's INSERT (the entry, nodes
    and head are the three statements above)."""
    key = (dialect, table.name if table is not None else "", columns)
    statement = _APPEND_STATEMENTS.get(key)
    if statement is not None:
        return statement
    if dialect != "postgresql":
        if table is None:
            raise ValueError("SQLite appends without a citing row use the fixed statements")
        statement = DirectStatement(insert(table), keys=(*columns, "audit_seq"))
    else:
        binds = [
            bindparam("head_id", HEAD_ID),
            bindparam("at", type_=_ENTRIES.c.at.type),
            bindparam("frontier", type_=_HEAD.c.frontier.type),
        ]
        citing = ""
        if table is not None:
            names = ", ".join(table.c[c].name for c in columns)
            values = ", ".join(f":c_{i}" for i in range(len(columns)))
            citing = (
                # Names from the schema (the Table), never from a request.
                f", citing AS (\n    INSERT INTO {table.name} ({names}, audit_seq)"  # noqa: S608
                f"\n    VALUES ({values}, :seq)\n)"
            )
            binds += [bindparam(f"c_{i}", type_=table.c[c].type) for i, c in enumerate(columns)]
        statement = DirectStatement(text(_PG_APPEND_SQL.format(citing=citing)).bindparams(*binds))
    _APPEND_STATEMENTS[key] = statement
    return statement


def _in_this_transaction(session: AsyncSession, key: str) -> Any:
    """What `key` holds for the session's current transaction, else None."""
    cached = session.info.get(key)
    transaction = session.sync_session.get_transaction()
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cached[1]
    return None


async def lock_head(session: AsyncSession) -> HeadState:
    """The head row, locked until the transaction ends. On PostgreSQL this also
    holds the policy lock exclusively (no release decision runs meanwhile), unless
    the transaction holds it shared (`share_policy`: a release about to append its
    entry). Read once per transaction: a second call returns the state already read
    (and kept current by `append`), without another round trip."""
    head: HeadState | None = _in_this_transaction(session, _HEAD_KEY)
    if head is not None:
        return head
    shared = _in_this_transaction(session, _SHARED_KEY) is not None
    dialect = session.sync_session.get_bind().dialect.name
    ((size, last_hash, frontier, epoch),) = await direct.fetch(
        session, _LOCK_HEAD[dialect, shared], {}
    )
    head = HeadState(size, last_hash, list(frontier), epoch)
    session.info[_HEAD_KEY] = (session.sync_session.get_transaction(), head)
    return head


async def share_policy(session: AsyncSession) -> int:
    """Hold the policy lock shared until the transaction ends and return the policy
    epoch (service/disclosures/inputs.py) as it stands under it. Release decisions run
    side by side under the shared lock; every change to what they read (consents,
    organizations, memberships, agreements, rules) holds it exclusively, so each
    decision falls wholly before or wholly after each change (API.md "Ordering").
    The caller appends its entry with `lock_head`, which then waits only for the
    append queue and the head row. On SQLite, BEGIN IMMEDIATE already serializes."""
    epoch: int | None = _in_this_transaction(session, _SHARED_KEY)
    if epoch is not None:
        return epoch
    head: HeadState | None = _in_this_transaction(session, _HEAD_KEY)
    if head is not None:
        return head.policy_epoch  # the head, and so the policy lock, held exclusively
    dialect = session.sync_session.get_bind().dialect.name
    ((value,),) = await direct.fetch(session, _SHARE_POLICY[dialect], {})
    epoch = int(value)
    session.info[_SHARED_KEY] = (session.sync_session.get_transaction(), epoch)
    return epoch


def forget_head(session: Session) -> None:
    """Make the next `lock_head` or `share_policy` in this transaction read the row
    again: database triggers moved a column `append` does not keep in memory (the
    policy epoch)."""
    session.info.pop(_HEAD_KEY, None)
    session.info.pop(_SHARED_KEY, None)


def event_document(event: AuditEvent, *, seq: int, at: datetime, prev: str) -> dict[str, Any]:
    """The entry document (accord_client.audit_format) that records `event`."""
    return entry_document(
        seq=seq,
        at=at,
        action=event.action,
        actor=_actor(event),
        subject=event.subject_ref,
        counterpart=str(event.counterpart_org_id) if event.counterpart_org_id else None,
        details=event.details,
        prev=prev,
    )


def build_entry(
    compact: CompactRange, last_hash: str, event: AuditEvent, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The row of the next entry after a log whose right edge is `compact` and whose
    last leaf hash (hex) is `last_hash`, and the rows of the tree nodes it completes;
    advances `compact`. Pure: `append` writes the result, and the benchmark's bulk
    seeding (bench/audit_seed.py) uses it too, so a seeded log is what appends would
    write."""
    seq = compact.size
    body = entry_bytes(event_document(event, seq=seq, at=now, prev=last_hash))
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


async def append(
    session: AsyncSession, event: AuditEvent, *, clock: Clock, citing: CitingRow | None = None
) -> Appended:
    """Write the entry, the nodes it completes, the new head and the citing row if
    any: one statement on PostgreSQL, three or four on SQLite. The locked head state
    is kept current for the next append."""
    head = await lock_head(session)
    compact = CompactRange(head.size, [bytes.fromhex(h) for h in head.frontier])
    now = clock.now()
    entry, nodes = build_entry(compact, head.last_hash, event, now)
    size, last_hash = compact.size, entry["leaf_hash"].hex()
    moved = {"size": size, "last_hash": last_hash, "frontier": [h.hex() for h in compact.hashes]}
    dialect = session.sync_session.get_bind().dialect.name
    table, columns = (citing.table, tuple(citing.values)) if citing else (None, ())
    if dialect == "postgresql":
        params = {
            **entry,
            "levels": [n["level"] for n in nodes],
            "idxs": [n["idx"] for n in nodes],
            "hashes": [n["hash"] for n in nodes],
            **moved,
        }
        if citing is not None:
            params |= {f"c_{i}": v for i, v in enumerate(citing.values.values())}
        await direct.execute(session, _append_statement(dialect, table, columns), params)
    else:
        await direct.execute(session, _INSERT_ENTRY, entry)
        await direct.execute_many(session, _INSERT_NODE, nodes)
        await direct.execute(session, _MOVE_HEAD, moved)
        if citing is not None:
            await direct.execute(
                session,
                _append_statement(dialect, table, columns),
                {**citing.values, "audit_seq": entry["seq"]},
            )
    head.size, head.last_hash, head.frontier = size, last_hash, moved["frontier"]
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
