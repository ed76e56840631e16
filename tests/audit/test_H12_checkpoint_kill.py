"""SECURITY-TESTS H12: SIGKILL while periodic checkpoints are being produced.

The service runs as a process with the shortest checkpoint interval (1 s) while
audited writes keep the tree growing, so a checkpoint is signed and stored about
every second; it is killed several times, at moments spread across that second,
and started again. After every restart, `GET /v1/audit/checkpoint` returns a
complete checkpoint whose signature verifies with the service's checkpoint key and
whose root is the root of the entries in the database, and every stored periodic
checkpoint verifies the same way and is a prefix of the log (its root is the root
of the first `size` entries): a kill never leaves a partial or wrong checkpoint."""

from __future__ import annotations

import asyncio
import base64
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.checkpoint import verify_checkpoint
from accord_client.merkle import leaf_hash, root_from_leaf_hashes
from sqlalchemy import select

from service.audit.models import AuditCheckpoint, AuditEntry
from service.auth.principals import Role
from service.clock import FrozenClock
from tests.support.databases import TestDatabase
from tests.support.processes import start_service, wait_until_healthy
from tests.support.world import TokenFactory, World

KILL_AFTER = (0.95, 1.1, 1.4)  # seconds of load: around the 1 s interval


async def _run_and_kill(db: TestDatabase, key_dir: Path, world: World, after: float) -> None:
    server, base = await start_service(db, key_dir, ACCORD_AUDIT_CHECKPOINT_INTERVAL_SECONDS="1")
    try:
        await wait_until_healthy(base, attempts=200)
        tokens = TokenFactory(world.tokens.settings, FrozenClock(datetime.now(UTC)))
        headers = tokens.headers(world.orgs["vsp"], Role.caseworker)
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:

            async def writes() -> None:
                while True:
                    try:
                        await http.post("/v1/subjects", json={}, headers=headers)
                    except httpx.TransportError:
                        return

            writers = [asyncio.create_task(writes()) for _ in range(2)]
            await asyncio.sleep(after)
            server.send_signal(signal.SIGKILL)
            await server.wait()
            await asyncio.gather(*writers)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def _check(app: Any, client: httpx.AsyncClient, world: World) -> int:
    public_key = app.state.keyring.checkpoint.public_key
    origin = app.state.settings.audit_origin
    async with app.state.sessionmaker() as session:
        bodies = (await session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq))).all()
        stored = (await session.scalars(select(AuditCheckpoint))).all()
    leaves = [leaf_hash(body.encode()) for body in bodies]
    for row in stored:
        signed = verify_checkpoint(row.note, name=origin, public_key=public_key, origin=origin)
        assert (signed.size, signed.root_hash) == (row.size, row.root_hash)
        assert row.root_hash == root_from_leaf_hashes(leaves[: row.size])  # a prefix
    auditor = world.headers("oversight", Role.auditor)
    latest = (await client.get("/v1/audit/checkpoint", headers=auditor)).json()
    signed = verify_checkpoint(latest["note"], name=origin, public_key=public_key, origin=origin)
    assert signed.size == latest["tree_size"] == len(leaves)
    assert signed.root_hash == base64.b64decode(latest["root_hash"])
    assert signed.root_hash == root_from_leaf_hashes(leaves)
    return len(stored)


@pytest.mark.crash
async def test_H12_sigkill_around_periodic_checkpoints_leaves_only_whole_ones(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, key_dir: Path
) -> None:
    for after in KILL_AFTER:
        await _run_and_kill(db, key_dir, world, after)
        stored = await _check(app, client, world)
    assert stored > 0  # the periodic task did sign and store checkpoints under load
