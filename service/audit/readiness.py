"""Is the audit log still protected? (issue 22, item 11; docs/audit.md "Readiness").

Read at start-up and by every `/readyz`: the append-only triggers exist and are
enabled (PostgreSQL: `ENABLE ALWAYS`), the foreign key that chains each entry to the
one before exists and is validated (PostgreSQL, migration 0180), the head row agrees
with the last entry, and the latest signed checkpoint agrees with the tree. Each
fault found is a short reason naming tables and numbers, never an entry's content.
A handful of indexed reads: O(log n) tree nodes for the checkpoint's root."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from service.audit import tree

# The triggers migrations 0002 (SQLite) and 0002 + 0120 (PostgreSQL) create.
SQLITE_TRIGGERS = frozenset(
    {
        "audit_entries_no_update",
        "audit_entries_no_delete",
        "audit_nodes_no_update",
        "audit_nodes_no_delete",
        "audit_checkpoints_no_update",
        "audit_checkpoints_no_delete",
        "audit_head_no_delete",
    }
)
POSTGRESQL_TRIGGERS = frozenset(
    {
        "audit_entries_no_change",
        "audit_entries_no_truncate",
        "audit_nodes_no_change",
        "audit_nodes_no_truncate",
        "audit_checkpoints_no_change",
        "audit_checkpoints_no_truncate",
        "audit_head_no_delete",
    }
)
log = logging.getLogger("accord.audit")
CHAIN_KEY = "fk_audit_entries_prev_entry"
_TABLES = ("audit_entries", "audit_nodes", "audit_checkpoints", "audit_head")


async def _trigger_faults(conn: AsyncConnection) -> list[str]:
    if conn.dialect.name == "sqlite":
        rows = await conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
        present = {name for (name,) in rows}
        return [
            f"audit log trigger {name} is missing" for name in sorted(SQLITE_TRIGGERS - present)
        ]
    rows = await conn.execute(
        text(
            "SELECT t.tgname, t.tgenabled FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname = ANY(:tables) AND NOT t.tgisinternal "
            "AND c.relnamespace = to_regnamespace(current_schema())"
        ),
        {"tables": list(_TABLES)},
    )
    # `tgenabled` is a "char": asyncpg gives bytes. "A" = ENABLE ALWAYS.
    enabled = {
        name: state.decode() if isinstance(state, bytes) else str(state) for name, state in rows
    }
    faults = []
    for name in sorted(POSTGRESQL_TRIGGERS):
        state = enabled.get(name)
        if state is None:
            faults.append(f"audit log trigger {name} is missing")
        elif state != "A":
            faults.append(f"audit log trigger {name} is not enabled always")
    key = await conn.execute(
        text(
            "SELECT convalidated FROM pg_constraint WHERE conname = :name "
            "AND conrelid = to_regclass('audit_entries')"
        ),
        {"name": CHAIN_KEY},
    )
    validated = key.scalar_one_or_none()
    if validated is None:
        faults.append(f"audit log foreign key {CHAIN_KEY} is missing")
    elif not validated:
        faults.append(f"audit log foreign key {CHAIN_KEY} is not validated")
    return faults


async def _head_faults(session: AsyncSession) -> list[str]:
    # One statement, so one snapshot: read in separate statements, an append or a
    # checkpoint committed in between (another request, another node) would read as
    # a head that disagrees with its log, and /readyz would drop a healthy node.
    rows = (
        await session.execute(
            text(
                "SELECT h.size, h.last_hash,"
                " (SELECT seq FROM audit_entries ORDER BY seq DESC LIMIT 1),"
                " (SELECT leaf_hash FROM audit_entries ORDER BY seq DESC LIMIT 1),"
                " (SELECT size FROM audit_checkpoints ORDER BY size DESC LIMIT 1),"
                " (SELECT root_hash FROM audit_checkpoints ORDER BY size DESC LIMIT 1)"
                " FROM audit_head h"
            )
        )
    ).all()
    if len(rows) != 1:
        return [f"audit head has {len(rows)} rows, not 1"]
    size, last_hash = int(rows[0][0]), str(rows[0][1])
    last = None if rows[0][2] is None else (rows[0][2], rows[0][3])
    checkpoint = None if rows[0][4] is None else (rows[0][4], rows[0][5])
    faults: list[str] = []
    if last is None:
        if size != 0:
            faults.append(f"audit head says {size} entries, the log has none")
    elif int(last[0]) != size - 1:
        faults.append(f"audit head says {size} entries, the last entry is number {last[0]}")
    elif bytes(last[1]).hex() != last_hash:
        faults.append("audit head's last hash differs from the last entry's")
    if checkpoint is not None:
        signed = int(checkpoint[0])
        if signed > size:
            faults.append(f"the latest checkpoint covers {signed} entries, the head {size}")
        else:
            try:
                root = await tree.root_at(session, signed)
            except LookupError:
                root = None
            if root != bytes(checkpoint[1]):
                faults.append(f"the tree's root at {signed} differs from the signed checkpoint's")
    return faults


async def protection_faults(session: AsyncSession) -> list[str]:
    """Every reason the audit log is not as the migrations left it (empty: protected)."""
    conn = await session.connection()
    return [*(await _trigger_faults(conn)), *(await _head_faults(session))]


async def audit_faults(factory: async_sessionmaker[AsyncSession]) -> list[str]:
    """`protection_faults` in a session of its own (read only, rolled back), each
    fault logged as an error: what start-up and `/readyz` call."""
    async with factory() as session:
        faults = await protection_faults(session)
    for fault in faults:
        log.error("audit log unprotected: %s", fault, extra={"event": "audit.unprotected"})
    return faults


async def startup_audit_check(factory: async_sessionmaker[AsyncSession]) -> None:
    """At start-up: the faults logged (`audit_faults`); a database that cannot be read
    yet (unreachable, not migrated) is `/readyz`'s to report, not a reason to stop."""
    try:
        await audit_faults(factory)
    except (SQLAlchemyError, OSError) as exc:  # the class only: messages quote parameters
        log.warning(
            "audit log protections not checked at start-up: %s",
            type(exc).__name__,
            extra={"event": "audit.unchecked"},
        )
