"""Statements run on the database driver itself, inside the session's transaction.

A delivery runs about ten statements, and through `AsyncSession.execute` each one
costs the event loop 0.15-0.2 ms of SQLAlchemy's machinery (a greenlet, a cache
key, an execution context, a result object) on top of the driver's own work (about
0.05 ms with asyncpg, a few microseconds with sqlite3); measured, that was a
quarter of a delivery's CPU time. A `DirectStatement` is an ordinary Core
statement, compiled by SQLAlchemy once per dialect with SQLAlchemy's own bind and
result processors, and then executed on the driver connection the session's
transaction already holds: asyncpg's `fetch`/`executemany`, or sqlite3 on the
event loop's thread (as service/db/sqlite_inline.py runs every non-waiting
statement). Same SQL, same conversions, same transaction; errors are raised as
SQLAlchemy's `DBAPIError` family, as `session.execute` raises them, so the error
handlers and every caller see no difference.

Only hot paths use it: the audit log's head lock and append (every audited
request) and a delivery's reads and writes; and only for statements whose rows are
plain values: no ORM entity, no expanding IN (`compile` must render every
parameter), no flush. Like a Core statement through the session (`autoflush` is
off service-wide, service/db/engine.py), it does not write the session's pending ORM
changes first: a caller that needs them written flushes (as `record_event` does).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from sqlalchemy import Executable, Insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

_DRIVER_KEY = "accord.direct_driver"
Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Plan:
    """A statement compiled for one dialect: its SQL, parameter order and processors."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    # Values the statement itself binds (a literal in a WHERE or VALUES clause).
    constants: Mapping[str, Any]
    # The result columns that have a processor, with it: on asyncpg most have none,
    # and a delivery's read returns hundreds of values.
    processed: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        values = (
            params[name] if name in params or name not in self.constants else self.constants[name]
            for name in self.names
        )
        return [
            value if process is None or value is None else process(value)
            for value, process in zip(values, self.binds, strict=True)
        ]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        if len(raw) != len(self.results):
            raise ValueError("a row does not have the statement's columns")
        if not self.processed:
            return tuple(raw)
        values = list(raw)
        for index, process in self.processed:
            value = values[index]
            if value is not None:
                values[index] = process(value)
        return tuple(values)


class DirectStatement:
    """A Core statement to run on the driver (see the module). Parameters are bound
    by name, as with `session.execute(statement, params)`."""

    __slots__ = ("_keys", "_plans", "_statement")

    def __init__(self, statement: Executable, *, keys: Sequence[str] | None = None) -> None:
        """`keys`: for an INSERT or UPDATE without explicit values, the columns the
        parameters set (as `session.execute` infers from the parameter names)."""
        self._statement = statement
        self._keys = list(keys) if keys is not None else None
        self._plans: dict[str, _Plan] = {}

    def plan(self, dialect: Dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = _compile(self._statement, dialect, self._keys)
        return plan


def _compile(statement: Executable, dialect: Dialect, keys: list[str] | None) -> _Plan:
    if not isinstance(statement, ClauseElement):
        raise TypeError("a direct statement is a Core statement")
    if isinstance(statement, Insert):
        statement = statement.inline()  # no implicit RETURNING of generated keys
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError("a direct statement is a SQL statement")
    names = tuple(compiled.positiontup or ())
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("a direct statement cannot have an expanding parameter")
    binds = tuple(
        compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    )
    constants = {
        name: compiled.binds[name].effective_value
        for name in names
        if not compiled.binds[name].required
    }
    columns = getattr(statement, "selected_columns", None)
    if columns is None:
        returning = getattr(statement, "_returning", ())
        columns = returning
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    processed = tuple((i, process) for i, process in enumerate(results) if process is not None)
    return _Plan(compiled.string, names, binds, results, constants, processed)


class _Driver(Protocol):
    dialect: Dialect

    async def fetch(self, plan: _Plan, args: list[Any]) -> list[tuple[Any, ...]]: ...

    async def execute_many(self, plan: _Plan, args: list[list[Any]]) -> None: ...


def _reraise(
    dialect: Dialect, plan: _Plan, args: list[Any], error: Exception, connection: Any
) -> NoReturn:
    """Raise `error` as SQLAlchemy would have: the DBAPI error wrapped in DBAPIError
    (OperationalError, IntegrityError, ...), its parameters never shown (they can be
    ciphertext)."""
    raise DBAPIError.instance(
        plan.sql,
        args,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=True,
        connection_invalidated=dialect.is_disconnect(error, connection, None),  # type: ignore[arg-type]
        dialect=dialect,
        ismulti=bool(args) and isinstance(args[0], list),
    ) from error


class _Asyncpg:
    """asyncpg, in the transaction SQLAlchemy's adapter holds (begun here if no
    statement has begun it yet, exactly as the adapter's own cursor does)."""

    def __init__(self, adapted: Any, dialect: Dialect) -> None:
        self._adapted = adapted
        self._connection = adapted.driver_connection
        self.dialect = dialect

    async def _begin(self) -> None:
        if self._adapted._transaction is None:
            await self._adapted._start_transaction()

    async def fetch(self, plan: _Plan, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            await self._begin()  # fails, as a statement would, on a connection lost
            records = await self._connection.fetch(plan.sql, *args)
        except Exception as error:  # noqa: BLE001 - every driver error, as the adapter's cursor
            self._translate(plan, args, error)
        return [plan.row(record) for record in records]

    async def execute_many(self, plan: _Plan, args: list[list[Any]]) -> None:
        try:
            await self._begin()
            await self._connection.executemany(plan.sql, args)
        except Exception as error:  # noqa: BLE001 - every driver error, as the adapter's cursor
            self._translate(plan, args, error)

    def _translate(self, plan: _Plan, args: list[Any], error: Exception) -> NoReturn:
        try:
            self._adapted._handle_exception(error)  # asyncpg's error as the adapter's DBAPI one
        except Exception as dbapi_error:  # noqa: BLE001 - what the adapter raised, re-raised
            _reraise(self.dialect, plan, args, dbapi_error, self._adapted)
        raise error  # not reached: the adapter always raises


class _Sqlite:
    """sqlite3, on the event loop's thread, in the transaction BEGIN IMMEDIATE opened
    when SQLAlchemy began the connection (service/db/engine.py)."""

    def __init__(self, adapted: Any, dialect: Dialect) -> None:
        self._adapted = adapted
        self._connection = adapted.driver_connection._connection  # aiosqlite's sqlite3
        self.dialect = dialect

    async def fetch(self, plan: _Plan, args: list[Any]) -> list[tuple[Any, ...]]:
        try:
            raw = self._connection.execute(plan.sql, args).fetchall()
        except sqlite3.Error as error:
            _reraise(self.dialect, plan, args, error, self._adapted)
        return [plan.row(r) for r in raw]

    async def execute_many(self, plan: _Plan, args: list[list[Any]]) -> None:
        try:
            self._connection.executemany(plan.sql, args)
        except sqlite3.Error as error:
            _reraise(self.dialect, plan, args, error, self._adapted)


_DRIVERS: dict[str, Callable[[Any, Dialect], _Driver]] = {
    "postgresql": _Asyncpg,
    "sqlite": _Sqlite,
}


async def _driver(session: AsyncSession) -> _Driver:
    """The driver of the session's current transaction (begun if need be)."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_DRIVER_KEY)
    if cached is not None and transaction is not None and cached[0] is transaction:
        driver: _Driver = cached[1]
        return driver
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    dialect = connection.dialect
    driver = _DRIVERS[dialect.name](raw.dbapi_connection, dialect)
    session.info[_DRIVER_KEY] = (session.sync_session.get_transaction(), driver)
    return driver


async def _lost(session: AsyncSession, error: DBAPIError) -> None:
    """A connection found lost is invalidated, as SQLAlchemy does for its own
    statements: the pool replaces it, and checks the others before their next use
    (service/db/engine.py). Without this the dead connection would go back to the pool."""
    if error.connection_invalidated:
        # The caller raises the error it has; a failure here must not replace it.
        with contextlib.suppress(SQLAlchemyError):
            connection = await session.connection()
            await connection.invalidate(error.orig if isinstance(error.orig, Exception) else None)


async def fetch(
    session: AsyncSession, statement: DirectStatement, params: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    """Run `statement` in the session's transaction; its rows as tuples of plain values."""
    driver = await _driver(session)
    plan = statement.plan(driver.dialect)
    try:
        return await driver.fetch(plan, plan.args(params))
    except DBAPIError as error:
        await _lost(session, error)
        raise


async def execute(
    session: AsyncSession, statement: DirectStatement, params: Mapping[str, Any]
) -> None:
    """Run `statement` (no rows wanted) in the session's transaction."""
    await fetch(session, statement, params)


async def execute_many(
    session: AsyncSession, statement: DirectStatement, params: Sequence[Mapping[str, Any]]
) -> None:
    """Run `statement` once per parameter set, in one call to the driver."""
    driver = await _driver(session)
    plan = statement.plan(driver.dialect)
    try:
        await driver.execute_many(plan, [plan.args(p) for p in params])
    except DBAPIError as error:
        await _lost(session, error)
        raise
