"""F10 and F11 (rows this project adds, docs/threat-model.md "The audit log's own
protections"; issue 22, item 11). F10: with the append-only triggers dropped or
disabled and the last entries deleted (as the database owner, directly), `/readyz`
answers 503 naming the reason, in the running service and after a restart, and the
log says so. F11 (PostgreSQL): the foreign key from (previous sequence, previous
hash) to (sequence, hash) refuses a gap or a broken link even from a writer that
bypasses the service and its triggers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from service.audit import readiness
from service.audit.log import AuditEvent, append
from service.audit.tree import record_checkpoint
from service.clock import FrozenClock
from service.db.engine import session_scope
from tests.support.databases import TestDatabase
from tests.support.processes import start_service, wait_until_healthy
from tests.support.world import World


async def _owner(app: Any, *statements: str) -> None:
    """Run SQL as the database owner, bypassing the service."""
    async with app.state.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


def _drop_delete_trigger(engine: str) -> str:
    if engine == "sqlite":
        return "DROP TRIGGER audit_entries_no_delete"
    return "DROP TRIGGER audit_entries_no_change ON audit_entries"


async def _checkpointed(app: Any, clock: FrozenClock) -> None:
    async with session_scope(app.state.sessionmaker) as session:
        await append(session, AuditEvent(action="test.entry", actor=None), clock=clock)
        await record_checkpoint(
            session,
            signer=app.state.keyring.checkpoint,
            origin=app.state.settings.audit_origin,
            clock=clock,
        )


async def _not_ready(http: httpx.AsyncClient, *reasons: str) -> None:
    ready = await http.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert ready.headers["content-type"].startswith("application/problem+json")
    detail = ready.json()["detail"]
    for reason in reasons:
        assert reason in detail, detail


async def test_F10_readyz_refuses_a_log_without_triggers_and_its_tail(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    key_dir: Path,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _checkpointed(app, clock)
    assert (await client.get("/readyz")).status_code == 200
    await _owner(
        app,
        _drop_delete_trigger(db.engine),
        "DELETE FROM audit_entries WHERE seq >= (SELECT size - 2 FROM audit_head)",
    )
    trigger = "audit_entries_no_delete" if db.engine == "sqlite" else "audit_entries_no_change"
    await _not_ready(client, f"audit log trigger {trigger} is missing", "audit head says")
    with caplog.at_level(logging.ERROR, logger="accord.audit"):
        await readiness.startup_audit_check(app.state.sessionmaker)
    assert any("audit log unprotected" in r.getMessage() for r in caplog.records)
    # After a restart: still not ready, for the same reasons.
    server, base = await start_service(db, key_dir)
    try:
        await wait_until_healthy(base)
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
            await _not_ready(http, f"audit log trigger {trigger} is missing", "audit head says")
    finally:
        server.terminate()
        await server.wait()


async def test_F10_readyz_refuses_a_log_cut_back_behind_its_checkpoint(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, clock: FrozenClock
) -> None:
    """The tail deleted and the head rewound to agree with it: the latest signed
    checkpoint still covers the deleted entries."""
    await _checkpointed(app, clock)
    drops = (
        ["DROP TRIGGER audit_entries_no_delete", "DROP TRIGGER audit_nodes_no_delete"]
        if db.engine == "sqlite"
        else [
            "ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_change",
            "ALTER TABLE audit_nodes DISABLE TRIGGER audit_nodes_no_change",
        ]
    )
    await _owner(
        app,
        *drops,
        "DELETE FROM audit_entries WHERE seq = (SELECT size - 1 FROM audit_head)",
        "DELETE FROM audit_nodes WHERE level = 0 AND idx = (SELECT size - 1 FROM audit_head)",
        "UPDATE audit_head SET size = size - 1, last_hash = (SELECT lower(hex(leaf_hash)) "
        "FROM audit_entries ORDER BY seq DESC LIMIT 1)"
        if db.engine == "sqlite"
        else "UPDATE audit_head SET size = size - 1, last_hash = (SELECT encode(leaf_hash, 'hex') "
        "FROM audit_entries ORDER BY seq DESC LIMIT 1)",
    )
    reasons = ["the latest checkpoint covers"]
    if db.engine == "postgresql":
        reasons.append("audit_entries_no_change is not enabled always")
    else:
        reasons.append("audit_nodes_no_delete is missing")
    await _not_ready(client, *reasons)


async def test_F11_the_chain_is_a_foreign_key_on_postgresql(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, clock: FrozenClock
) -> None:
    if db.engine != "postgresql":
        pytest.skip("a foreign key on generated columns: PostgreSQL (DESIGN.md section 7)")
    async with app.state.engine.connect() as conn:
        size, last = (await conn.execute(text("SELECT size, last_hash FROM audit_head"))).one()
    entry = (
        "INSERT INTO audit_entries (seq, at, action, body, leaf_hash) VALUES "
        "({seq}, now(), 'forged', '{{\"prev\":\"{prev}\"}}', decode('{leaf}', 'hex'))"
    )
    forged = ["a" * 64, last]
    cases = {
        "a gap": entry.format(seq=size + 1, prev=last, leaf="b" * 64),
        "a broken link": entry.format(seq=size, prev=forged[0], leaf="b" * 64),
    }
    for case, statement in cases.items():
        with pytest.raises(IntegrityError, match="fk_audit_entries_prev_entry"):
            await _owner(app, statement)
        assert case
    # The next entry in its place links: the key does not stop honest appends.
    await _owner(app, entry.format(seq=size, prev=forged[1], leaf="c" * 64))
