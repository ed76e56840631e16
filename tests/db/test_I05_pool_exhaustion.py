"""SECURITY-TESTS I05, pool exhaustion: when every pooled database connection is
busy, a new request waits at most the pool timeout (`ACCORD_DATABASE_POOL_TIMEOUT`)
and then gets a 503 problem with `Retry-After`, not a hang, a 500 or a 401; the
liveness probe, which needs no connection, still answers 200; the rejected write
changes nothing (O-unchanged); and once connections come back the same requests
succeed. The busy connections are held by the test itself (checked out of the
service's own engine), which is what slow exports and deliveries do to the pool.
On SQLite the pool is one connection whatever the setting, on PostgreSQL two here."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from service.settings import Settings
from tests.support.databases import TestDatabase, settings_for
from tests.support.world import World

POOL_TIMEOUT = 0.5
# Far above the pool timeout, far below a hang: the requests must come back.
NOT_HANGING = 20.0


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return settings_for(db, key_dir, database_pool_size=2, database_pool_timeout=POOL_TIMEOUT)


async def _hold_every_connection(app: Any, stack: AsyncExitStack) -> None:
    size = app.state.engine.pool.size()
    for _ in range(size):
        await stack.enter_async_context(app.state.engine.connect())
    assert app.state.engine.pool.checkedout() == size


def _is_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503
    assert "Traceback" not in response.text


async def test_I05_exhausted_pool_answers_503_in_time_and_changes_nothing(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    caseworker = world.headers("vsp", Role.caseworker)
    before = db.dump()
    async with AsyncExitStack() as stack:
        await _hold_every_connection(app, stack)
        started = time.perf_counter()
        created = await asyncio.wait_for(
            client.post("/v1/subjects", json={}, headers=caseworker), NOT_HANGING
        )
        waited = time.perf_counter() - started
        _is_unavailable(created)
        # It waited for a connection first, and no longer than the configured timeout
        # (plus slack for a busy machine; the default timeout is 10 s).
        assert POOL_TIMEOUT * 0.9 <= waited < POOL_TIMEOUT + 5
        # Reads and the readiness probe fail the same way; liveness needs no connection.
        listed = await asyncio.wait_for(
            client.get("/v1/referrals?box=sent", headers=caseworker), NOT_HANGING
        )
        _is_unavailable(listed)
        ready = await asyncio.wait_for(client.get("/readyz"), NOT_HANGING)
        assert ready.status_code == 503
        assert (await client.get("/healthz")).status_code == 200
    assert db.dump() == before  # O-unchanged
    # Connections back: the same requests succeed.
    assert (await client.post("/v1/subjects", json={}, headers=caseworker)).status_code == 201
    assert (await client.get("/v1/referrals?box=sent", headers=caseworker)).status_code == 200
    assert (await client.get("/readyz")).status_code == 200


async def test_I05_a_crowd_of_requests_on_an_exhausted_pool_all_come_back(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    """Forty requests at once against a pool that frees one connection after a
    while: every request ends (no hang), each with a success or a 503, none with
    another error, and the ones that got a connection did their work."""
    caseworker = world.headers("vsp", Role.caseworker)
    stack = AsyncExitStack()
    await _hold_every_connection(app, stack)

    async def release_later() -> None:
        await asyncio.sleep(POOL_TIMEOUT * 0.5)
        await stack.aclose()

    releasing = asyncio.create_task(release_later())
    responses = await asyncio.wait_for(
        asyncio.gather(
            *(client.post("/v1/subjects", json={}, headers=caseworker) for _ in range(40))
        ),
        NOT_HANGING,
    )
    await releasing
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 503}, statuses
    for response in responses:
        if response.status_code == 503:
            _is_unavailable(response)
    assert 201 in statuses  # the freed connections served some of them
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    for subject_id in ids:  # each 201 is a real subject
        found = await client.get(f"/v1/subjects/{subject_id}", headers=caseworker)
        assert found.status_code == 200, found.text
