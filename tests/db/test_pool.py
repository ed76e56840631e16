"""The PostgreSQL pool checks a connection before handing it out only when it has
been idle (service/db/engine.py `_ping_when_idle`): a connection that died while idle is
replaced without a failed request, a connection used moments ago costs no extra
round trip, and after a connection is found lost (a server restart ends them all)
every older one is checked before its next use. PostgreSQL only: SQLite has no
server connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from service.settings import Settings
from service.storage import make_engine
from tests.support.databases import TestDatabase


def _postgresql_only(db: TestDatabase) -> None:
    if db.engine != "postgresql":
        pytest.skip("SQLite has no server connection to check")


@pytest.fixture
async def other(db: TestDatabase) -> AsyncIterator[AsyncEngine]:
    """A second, unpooled engine on the same database (to end a backend)."""
    _postgresql_only(db)
    engine = create_async_engine(db.url, poolclass=NullPool)
    yield engine
    await engine.dispose()


def _engine(db: TestDatabase, idle_seconds: float) -> AsyncEngine:
    return make_engine(
        Settings(database_url=db.url, database_pool_size=1, database_ping_idle_seconds=idle_seconds)
    )


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_connection_that_died_idle_is_replaced_before_use(
    db: TestDatabase, other: AsyncEngine
) -> None:
    engine = _engine(db, idle_seconds=0.05)
    try:
        pid = await _backend_pid(engine)
        async with other.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await asyncio.sleep(0.2)  # idle for longer than the threshold
        assert await _backend_pid(engine) != pid  # no error: replaced at checkout
    finally:
        await engine.dispose()


async def test_connection_that_died_moments_ago_fails_once_then_the_pool_recovers(
    db: TestDatabase, other: AsyncEngine
) -> None:
    """Within the threshold there is no check: the first statement fails as a
    disconnect (the service answers 503), and the next checkout gets a new one."""
    from sqlalchemy.exc import DBAPIError

    engine = _engine(db, idle_seconds=3600)
    try:
        pid = await _backend_pid(engine)
        async with other.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await asyncio.sleep(0.1)  # the backend has gone
        with pytest.raises(DBAPIError) as failure:
            await _backend_pid(engine)
        assert failure.value.connection_invalidated
        assert await _backend_pid(engine) != pid
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("idle_seconds", "pings"), [(3600, 0), (0, 4)])
async def test_a_connection_is_pinged_only_after_idling(
    db: TestDatabase, monkeypatch: pytest.MonkeyPatch, idle_seconds: float, pings: int
) -> None:
    _postgresql_only(db)
    calls: list[object] = []
    original = AsyncAdapt_asyncpg_connection.ping

    def counting_ping(self: Any) -> None:
        calls.append(self)
        original(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counting_ping)
    engine = _engine(db, idle_seconds=idle_seconds)
    try:
        pids = {await _backend_pid(engine) for _ in range(4)}
    finally:
        await engine.dispose()
    assert len(pids) == 1  # one pooled connection throughout
    # 0 checks every checkout (as SQLAlchemy's pool_pre_ping would); otherwise a
    # connection just opened, or back in the pool moments ago, is not checked.
    assert len(calls) == pings


async def test_after_a_server_restart_at_most_one_request_fails(
    app: Any, client: Any, world: Any, db: TestDatabase, other: AsyncEngine
) -> None:
    """Every backend of the service's pool ends at once (a restart, a failover)
    while the connections were in use moments ago: the first request answers 503
    (nothing changed, retry) and SQLAlchemy discards every older connection, so the
    next requests succeed on new ones, even though each starts with a statement on
    the driver (the principal's organization, service/auth/dependencies.py)."""
    from service.auth.principals import Role

    headers = world.headers("vsp", Role.caseworker)
    engine = app.state.engine
    held = [await engine.connect() for _ in range(3)]  # three pooled connections
    for conn in held:
        await conn.execute(text("SELECT 1"))
    for conn in held:
        await conn.close()
    async with other.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await asyncio.sleep(0.1)
    statuses = [(await client.post("/v1/subjects", json={}, headers=headers)).status_code]
    for _ in range(4):
        statuses.append((await client.post("/v1/subjects", json={}, headers=headers)).status_code)
    assert statuses.count(503) <= 1, statuses
    assert statuses[-3:] == [201, 201, 201], statuses
