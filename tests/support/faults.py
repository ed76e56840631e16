"""Every-statement fault injection (SECURITY-TESTS H03).

Counts the SQL statements the service sends, both ways it sends them: through
SQLAlchemy (the `before_cursor_execute` event, so SQLAlchemy wraps the fault as it
wraps a driver's) and on the driver itself (service/db/direct.py: the driver
connection is wrapped, so the fault goes through direct.py's own translation). At
statement `fail_at` it raises the driver's OperationalError, as a database that
went away mid-transaction would. Commits are not statements here (F09 covers them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from service.db import direct


class StatementFaults:
    def __init__(self, engine: AsyncEngine) -> None:
        self._error = engine.dialect.loaded_dbapi.OperationalError
        self.count = 0
        self.on_driver = 0  # of `count`, the statements run through service/db/direct.py
        self.fail_at: int | None = None
        self.fired = False

    def arm(self, fail_at: int | None) -> None:
        self.count, self.on_driver, self.fail_at, self.fired = 0, 0, fail_at, False

    def hit(self, statement: str, *, on_driver: bool = False) -> None:
        self.count += 1
        self.on_driver += on_driver
        if self.count == self.fail_at:
            self.fired = True
            raise self._error(f"injected fault at statement {self.count}: {statement[:40]}")


class _AsyncpgProxy:
    def __init__(self, connection: Any, faults: StatementFaults) -> None:
        self._connection, self._faults = connection, faults

    async def fetch(self, sql: str, *args: Any) -> Any:
        self._faults.hit(sql, on_driver=True)
        return await self._connection.fetch(sql, *args)

    async def executemany(self, sql: str, args: Any) -> Any:
        self._faults.hit(sql, on_driver=True)
        return await self._connection.executemany(sql, args)


class _SqliteProxy:
    def __init__(self, connection: Any, faults: StatementFaults) -> None:
        self._connection, self._faults = connection, faults

    def execute(self, sql: str, args: Any) -> Any:
        self._faults.hit(sql, on_driver=True)
        return self._connection.execute(sql, args)

    def executemany(self, sql: str, args: Any) -> Any:
        self._faults.hit(sql, on_driver=True)
        return self._connection.executemany(sql, args)


@contextmanager
def statement_faults(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StatementFaults]:
    faults = StatementFaults(engine)

    def before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        faults.hit(statement)

    for driver, proxy in ((direct._Asyncpg, _AsyncpgProxy), (direct._Sqlite, _SqliteProxy)):
        original = driver.__init__

        def init(
            self: Any, adapted: Any, dialect: Any, _o: Any = original, _p: Any = proxy
        ) -> None:
            _o(self, adapted, dialect)
            self._connection = _p(self._connection, faults)

        monkeypatch.setattr(driver, "__init__", init)
    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield faults
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
