"""Fixtures of the cross-node tests: the environment of every node (one PostgreSQL
database cloned from the migrated template, the shared key directory, Redis for
the rate-limit counters) and a factory that starts a cluster with extra settings.
Skipped with the reason when HAProxy or Redis is missing (.ci/run installs
HAProxy; Redis is the deployment's own)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from service.keyring import load_keyring
from tests.scale import cluster
from tests.scale.federation import Federation, build
from tests.support import databases
from tests.support.databases import PG_SKIP_REASON, TestDatabase, settings_for
from tests.support.processes import service_env

StartCluster = Callable[
    ..., contextlib.AbstractAsyncContextManager[tuple[cluster.Cluster, Federation]]
]


def _usable(db: TestDatabase) -> None:
    reason = cluster.missing_parts()
    if reason is not None:
        pytest.skip(f"cross-node tests skipped: {reason}")
    if db.engine != "postgresql":
        pytest.skip("several app nodes need PostgreSQL")


@contextlib.asynccontextmanager
async def _started(
    db: TestDatabase, key_dir: Path, workdir: Path, count: int, extra: dict[str, Any]
) -> AsyncIterator[tuple[cluster.Cluster, Federation]]:
    settings = settings_for(db, key_dir)
    load_keyring(settings, create=True)  # before any node starts: one set of keys
    env = service_env(
        db,
        key_dir,
        ACCORD_RATE_LIMIT_STORAGE_URL=cluster.REDIS_URL,
        ACCORD_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        ACCORD_LOG_LEVEL="WARNING",
        **{key: str(value) for key, value in extra.items()},
    )
    async with cluster.running(env, workdir, count=count) as running:
        try:
            yield running, await build(settings, running.base)
        except BaseException:
            print(running.logs())  # shown with the failure
            raise


@pytest.fixture
def start_cluster(db: TestDatabase, key_dir: Path, tmp_path: Path) -> StartCluster:
    """`async with start_cluster(count, **settings) as (cluster, federation)`: nodes on
    the test's PostgreSQL database, each with the settings given (ACCORD_ names)."""
    _usable(db)

    def start(
        count: int = 2, **extra: Any
    ) -> contextlib.AbstractAsyncContextManager[tuple[cluster.Cluster, Federation]]:
        return _started(db, key_dir, tmp_path / "cluster", count, extra)

    return start


@contextlib.asynccontextmanager
async def shared_cluster(
    template: str | None, key_dir: Path, workdir: Path, count: int, **extra: Any
) -> AsyncIterator[tuple[cluster.Cluster, Federation]]:
    """One cluster for the tests of a module (a module-scoped fixture calls this
    with the session's `pg_template`, `key_dir` and a directory), on a PostgreSQL
    database of its own cloned from the template."""
    base = databases.pg_base_url()
    if base is None or template is None:
        pytest.skip(PG_SKIP_REASON)
    db = await asyncio.to_thread(databases.pg_database, base, template)
    try:
        _usable(db)
        async with _started(db, key_dir, workdir, count, extra) as started:
            yield started
    finally:
        await asyncio.to_thread(databases.pg_drop, base, make_url(db.url).database or "")
