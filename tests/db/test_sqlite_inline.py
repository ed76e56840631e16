"""SQLite statements run on the event loop's thread; lock waits and commits do not
(service/db/sqlite_inline.py). SQLite only: PostgreSQL has no such connection."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db.sqlite_inline import _waits
from service.settings import Settings
from service.storage import make_engine


def _engine(path: Path) -> AsyncEngine:
    return make_engine(Settings(database_url=f"sqlite+aiosqlite:///{path}"))


def test_waits_classifies_calls() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        assert _waits(conn.commit, ())
        assert _waits(conn.rollback, ())
        assert _waits(conn.execute, ("BEGIN IMMEDIATE",))
        assert _waits(conn.execute, ("  begin",))
        assert _waits(conn.execute, ("PRAGMA wal_checkpoint(TRUNCATE)",))
        assert _waits(conn.execute, ("VACUUM",))
        assert not _waits(conn.execute, ("SELECT 1", ()))
        assert not _waits(conn.execute, ("INSERT INTO t VALUES (?)", (1,)))
        assert not _waits(conn.execute, ("BEGINNING",))  # a word, not the statement
        assert not _waits(conn.cursor, ())
        assert not _waits(conn.execute, ("",))
    finally:
        conn.close()


async def test_statements_inline_commit_on_worker_thread(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "t.db")
    seen: list[tuple[int, str]] = []
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            raw._conn.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))
            await conn.execute(text("INSERT INTO t VALUES (1)"))
            rows = (await conn.execute(text("SELECT x FROM t"))).all()
            await conn.commit()
            raw._conn.set_trace_callback(None)
        assert rows == [(1,)]
        loop_thread = threading.get_ident()
        by_statement = {sql.split()[0].upper(): ident for ident, sql in seen}
        assert by_statement["INSERT"] == loop_thread
        assert by_statement["SELECT"] == loop_thread
        assert by_statement["BEGIN"] != loop_thread
        assert by_statement["COMMIT"] != loop_thread
    finally:
        await engine.dispose()


async def test_lock_wait_does_not_block_the_event_loop(tmp_path: Path) -> None:
    """Another process's write lock makes BEGIN IMMEDIATE wait; the loop keeps serving."""
    path = tmp_path / "t.db"
    engine = _engine(path)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.6, holder.execute, args=("COMMIT",))
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        started = time.perf_counter()
        release.start()
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t VALUES (2)"))
        waited = time.perf_counter() - started
        ticker.cancel()
        release.join()
        holder.close()
        assert waited >= 0.5  # the write lock really was waited for
        assert ticks >= 20  # and the loop ran meanwhile (about 60 ticks of 10 ms)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("statement", ["SELECT nosuchcolumn", "INSERT INTO nosuchtable VALUES (3)"])
async def test_inline_error_surfaces_as_the_driver_error(tmp_path: Path, statement: str) -> None:
    """An inline failure is the same database error a threaded call would raise."""
    engine = _engine(tmp_path / "t.db")
    try:
        async with engine.connect() as conn:
            with pytest.raises(OperationalError):
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
