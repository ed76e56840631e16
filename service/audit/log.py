"""Append to the audit log inside the caller's transaction (DESIGN.md guarantee 3).

If the caller's transaction rolls back, the entry never existed; if the append
fails, the caller's transaction fails with it. Appends are serialized by the head
row (PostgreSQL: the append queue, an advisory lock granted in arrival order, then
SELECT ... FOR UPDATE, both held to the commit; SQLite: the write lock that BEGIN
IMMEDIATE takes), so sequence numbers are gap-free, and each append writes the
leaf, the O(log n) subtree nodes it completes, and the new right edge. The locks
and their order are service/audit/ordering.py's.
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
from sqlalchemy import Table, bindparam, insert, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.models import AuditEntry, AuditHead, AuditNode
from service.audit.ordering import HEAD_ID, lock_head
from service.auth.principals import Principal
from service.clock import Clock
from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import Base


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


@dataclass(frozen=True)
class Appended:
    """What an append wrote that its caller may need: the entry's number and time."""

    seq: int
    at: datetime


# Core statements on the tables themselves (no ORM identity map, bulk or
# unit-of-work machinery: this runs in every audited request).
_ENTRIES = Base.metadata.tables[AuditEntry.__tablename__]
_NODES = Base.metadata.tables[AuditNode.__tablename__]
_HEAD = Base.metadata.tables[AuditHead.__tablename__]


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
    for one round trip fewer.

    `also`: further events cited by the same entry, in order, each a row of the
    same table with these `values` but its `event` set to the name and its `detail`
    NULL (a referral send's recipient warnings, beside its "sent" event)."""

    table: Table
    values: Mapping[str, Any]
    also: tuple[str, ...] = ()

    def also_rows(self) -> list[dict[str, Any]]:
        """The rows of `also`, without their `audit_seq`."""
        if self.also and "event" not in self.values:
            raise ValueError("only a row with an event names further events")
        return [{**self.values, "event": name, "detail": None} for name in self.also]


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


def _also_statement(table: Table, columns: tuple[str, ...]) -> DirectStatement:
    """The INSERT of a citing row's further events (`CitingRow.also`), both engines."""
    key = ("also", table.name, columns)
    statement = _APPEND_STATEMENTS.get(key)
    if statement is None:
        statement = DirectStatement(insert(table), keys=(*columns, "audit_seq"))
        _APPEND_STATEMENTS[key] = statement
    return statement


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
    if citing is not None and citing.also:
        # After the citing row, in order (the timeline's order is the rows' ids).
        await direct.execute_many(
            session,
            _also_statement(citing.table, columns),
            [{**row, "audit_seq": entry["seq"]} for row in citing.also_rows()],
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
