"""Database engine, declarative base and the per-request session.

SQLite (embedded default): WAL, foreign keys on every connection, secure_delete
(crypto-shredding must really remove bytes), one connection so that writes are
serialized in the process rather than by SQLite's busy handler (DESIGN.md
section 10), and every transaction opened with BEGIN IMMEDIATE; statements run on
the event loop's thread, lock waits and commits on aiosqlite's (sqlite_inline.py).
PostgreSQL (production): asyncpg with a bounded pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from service.db import sqlite_inline
from service.errors import ServiceUnavailableError
from service.settings import Settings

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both engines (SQLite stores naive text; we add UTC back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use timezone-aware UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def engine_for(settings: Settings) -> AsyncEngine:
    """The engine for `settings`, with the engine-specific set-up below (the service
    adds its own listeners: service/storage.py)."""
    if settings.is_sqlite:
        _create_private(make_url(settings.database_url).database)
        engine = create_async_engine(
            settings.database_url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=settings.database_pool_timeout,
            # Statements on the event loop's thread, waits on aiosqlite's (sqlite_inline.py).
            async_creator=sqlite_inline.connector(
                make_url(settings.database_url).database or ":memory:", timeout=5.0
            ),
        )
        _install_sqlite_pragmas(engine)
        return engine
    engine = create_async_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=0,
        pool_timeout=settings.database_pool_timeout,
    )
    _ping_when_idle(engine, settings.database_ping_idle_seconds)
    return engine


def _create_private(database: str | None) -> None:
    """Create a new SQLite database file readable by its owner only (0600). SQLite
    would create it with the umask's mode (often world-readable 0644), and gives its
    -wal and -shm files the database file's mode. The file holds ciphertexts and
    metadata (who referred whom): nobody else on the machine reads it."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    # Created first by another process: its mode stands; no directory: SQLite says so.
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


_CHECKED_IN_AT = "accord.checked_in_at"


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled connection with a round trip before a request gets it, if it
    has been unused for `idle_seconds` or more; a dead one is replaced, and the
    request never sees it (a server restart or failover, an idle timeout in a
    proxy or firewall).

    SQLAlchemy's `pool_pre_ping` checks every checkout, and on asyncpg that is three
    round trips (BEGIN, an empty query, ROLLBACK) on every request. A connection
    back in the pool moments ago was alive moments ago: if the server went away
    since, the request's first statement fails, the request is answered 503 with
    nothing changed (as for a connection lost mid-request, SECURITY-TESTS H06), that
    connection is invalidated, and every connection checked in before that is
    checked before its next use."""

    @event.listens_for(engine.sync_engine.pool, "connect")
    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _fresh(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()  # just opened, or just used

    lost_at = 0.0  # when a connection of this pool was last found lost

    @event.listens_for(engine.sync_engine.pool, "invalidate")
    def _lost(_dbapi_connection: Any, _record: ConnectionPoolEntry, _error: Any) -> None:
        nonlocal lost_at
        lost_at = time.monotonic()  # the server may have gone: check the others

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKED_IN_AT)
        if (
            checked_in is not None
            and checked_in > lost_at
            and time.monotonic() - checked_in < idle_seconds
        ):
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool invalidates this connection and checks out another (three tries).
            raise DisconnectionError("a pooled connection failed its check") from error


def _install_sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's own transaction handling breaks
        # SAVEPOINT and would begin DEFERRED); see SQLAlchemy's SQLite dialect notes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA secure_delete=ON",
            "PRAGMA synchronous=FULL",
            "PRAGMA busy_timeout=5000",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock at the start: no SQLITE_BUSY_SNAPSHOT upgrades mid-transaction.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def sessionmaker_for(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that never expire on commit and never autoflush; `info` is shared by
    every session of the sessionmaker (the service keeps a cache there that is safe
    to lose: service/storage.py)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info or {})


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction per request: commit once at the end or roll back (STYLE.md rule 4).

    A context manager, not a bare async generator: a generator driven by `async for`
    inside another generator is never closed when the outer one is, and its session
    would be finalized later by the garbage collector on a cancelled task."""
    async with factory() as session:
        try:
            yield session
            await _commit(session)
        except BaseException:
            await session.rollback()
            raise


async def _commit(session: AsyncSession) -> None:
    """Commit; a commit the database refuses for any reason but a broken constraint
    (a conflict the caller reports) is a transient fault: nothing was changed, the
    client may retry (API.md: 503 when an audit write is impossible; on PostgreSQL a
    delivery's entry is appended inside the COMMIT, service/audit/at_commit.py)."""
    try:
        await session.commit()
    except (IntegrityError, OperationalError):
        raise  # a 409/422 for the caller, or already a 503 (service/web/error_handlers.py)
    except DBAPIError as error:
        if error.connection_invalidated:
            raise
        # The class only: a database message can quote parameters.
        log.warning("commit refused", extra={"error_type": type(error.orig).__name__})
        raise ServiceUnavailableError(
            "The change could not be committed; nothing was changed. Retry later"
        ) from error
