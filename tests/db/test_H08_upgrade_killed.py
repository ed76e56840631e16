"""SECURITY-TESTS H08: SIGKILL during `accord db upgrade`, then run it again.

The whole upgrade is one transaction on both engines (service/db/migrate.py; SQLite
transactions start with BEGIN IMMEDIATE and its DDL is transactional), so a kill
leaves either the schema as it was or the schema at head, never half of it; the
rerun completes, and the models match the migrated schema (autogenerate finds no
difference). The kill is aimed inside the migration transaction, not at start-up:
the test waits until it sees the upgrade's transaction (PostgreSQL: a lock held by
another backend; SQLite: the write lock taken) before it kills."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from service.db import migrate
from service.db.engine import Base
from tests.support.databases import TestDatabase, schema_difference

ACCORD = Path(sys.executable).parent / "accord"
WAIT = 60.0


def _upgrade_process(db: TestDatabase, tmp_path: Path, *, capture: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ACCORD_DATABASE_URL": db.url, "ACCORD_KEY_DIR": str(tmp_path / "k")}
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen([str(ACCORD), "db", "upgrade"], env=env, stdout=out, stderr=out)


def _sqlite_write_locked(db: TestDatabase) -> bool:
    conn = sqlite3.connect(make_url(db.url).database or "", timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return True
        raise
    else:
        conn.execute("ROLLBACK")
        return False
    finally:
        conn.close()


_PG_LOCKS = text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
    "WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() "
    "AND l.mode = 'AccessExclusiveLock'"
)


async def _in_upgrade_transaction(db: TestDatabase, conn: AsyncConnection | None) -> bool:
    if conn is None:
        return _sqlite_write_locked(db)
    return bool(await conn.scalar(_PG_LOCKS))


async def _tables(db: TestDatabase) -> set[str]:
    engine = create_async_engine(db.url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


# How long after the upgrade's transaction is first seen the kill comes (the
# transaction lasts about 0.1-0.5 s here): at once, and later into it.
@pytest.mark.parametrize("delay", [0.0, 0.05])
async def test_H08_upgrade_killed_midway_then_rerun_completes(
    db: TestDatabase, tmp_path: Path, delay: float
) -> None:
    engine = create_async_engine(db.url)
    try:
        await migrate.downgrade(engine, "base")
    finally:
        await engine.dispose()
    assert await _tables(db) <= {"alembic_version"}

    watcher = create_async_engine(db.url, poolclass=NullPool)
    try:
        async with watcher.connect() as conn:
            pg = None if db.engine == "sqlite" else conn
            if pg is not None:
                await conn.execute(text("COMMIT"))  # no snapshot held while watching
            upgrading = _upgrade_process(db, tmp_path, capture=False)
            deadline = time.monotonic() + WAIT
            while not await _in_upgrade_transaction(db, pg):
                if upgrading.poll() is not None or time.monotonic() > deadline:
                    upgrading.kill()
                    pytest.fail(f"never saw the upgrade's transaction ({upgrading.returncode})")
                await asyncio.sleep(0.002)
            await asyncio.sleep(delay)
            upgrading.send_signal(signal.SIGKILL)
    finally:
        await watcher.dispose()
    assert upgrading.wait(timeout=WAIT) == -signal.SIGKILL

    # All or nothing: the schema as it was, or (if the kill came just after the
    # commit) at head; never some of the migrations' tables without the others.
    tables = await _tables(db)
    engine = create_async_engine(db.url)
    try:
        revision = await migrate.current_revision(engine)
    finally:
        await engine.dispose()
    if revision is None:
        assert tables <= {"alembic_version"}, sorted(tables)
    else:
        assert revision == migrate.head_revision()
        assert set(Base.metadata.tables) <= tables

    rerun = _upgrade_process(db, tmp_path, capture=True)
    _, err = rerun.communicate(timeout=WAIT)
    assert rerun.returncode == 0, err.decode()[-2000:]
    assert await schema_difference(db.url) == []
