"""SQLite statements on the event loop's thread; only what waits goes to aiosqlite's.

aiosqlite runs every call on its worker thread: opening a cursor, executing,
fetching and closing a cursor are each a hand-off to that thread and back through
the event loop, three or four per statement. SQLite's own work for the service's
statements is a few microseconds (the pages are in memory), so those hand-offs
were most of a statement's cost (measured: about 0.7 ms of the event loop's time
per statement, 37 hand-offs per delivery).

This connection runs each call directly on the calling (event loop) thread,
except those that can wait: `BEGIN IMMEDIATE`, which waits up to the busy timeout
for another process's write lock (the CLI's sweep, a second worker), COMMIT, which
waits for the fsync of `synchronous=FULL`, rollback, VACUUM and PRAGMA (journal
mode, checkpoints). Those keep aiosqlite's thread, so the loop serves other
requests meanwhile.

Safe because SQLAlchemy's adapter awaits each call before the next on a
connection (one call at a time, on one thread or the other), and the sqlite3
connection is opened with `check_same_thread=False` for exactly that reason.
Within a transaction the service holds the write lock from its first statement
(db.py: every transaction begins IMMEDIATE), so no inline statement waits on a
lock; WAL readers never wait on writers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any

import aiosqlite

_ON_THREAD_CALLS = frozenset({"commit", "rollback"})
# Statements that take or wait for a lock, or write the whole file: BEGIN (IMMEDIATE),
# COMMIT/END, VACUUM, PRAGMA (journal_mode, wal_checkpoint; only at connect or by hand).
_ON_THREAD_STATEMENTS = frozenset({"BEGIN", "COMMIT", "END", "VACUUM", "PRAGMA"})


def _waits(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    """Whether this call may block: a commit or rollback, or one of the statements above."""
    if getattr(fn, "__name__", "") in _ON_THREAD_CALLS:
        return True
    if not args or not isinstance(args[0], str):
        return False
    words = args[0].split(None, 1)
    return bool(words) and words[0].upper() in _ON_THREAD_STATEMENTS


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose non-waiting calls run inline (see the module)."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if _waits(fn, args):
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def connector(database: str, *, timeout: float) -> Callable[[], Any]:
    """An `async_creator` for SQLAlchemy: opens an InlineConnection to `database`."""

    async def connect() -> InlineConnection:
        opener = partial(sqlite3.connect, database, timeout=timeout, check_same_thread=False)
        connection = InlineConnection(opener, iter_chunk_size=64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own
        await connection  # starts aiosqlite's thread and opens the file on it
        return connection

    return connect
