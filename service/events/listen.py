"""On PostgreSQL, hear the commits of every process that made deliveries: LISTEN.

A transaction that writes deliveries also sends a NOTIFY (service/events/wake.py),
which PostgreSQL delivers to every listening connection when, and only if, that
transaction commits. Each dispatcher listens on a connection of its own, outside
the service's pool (a listening connection must stay open, and must not be one a
request could take), and wakes when another process's notification names an
endpoint it is not already sending to.

A lost connection is opened again (after 1, 2, 4 ... up to 30 seconds), and every
(re)connection wakes the dispatcher once, for what may have been committed
while nobody listened. Notifications are only a shortcut: the dispatcher's poll
(ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS) still finds everything that is due.
Nothing is logged but the error's class; the payload holds ids only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncEngine

from service.events import wake

log = logging.getLogger("accord.events.listen")

_MOST_BACKOFF_SECONDS: Final = 30.0
_CONNECT_TIMEOUT_SECONDS: Final = 10.0
# SQLAlchemy's own arguments among its asyncpg dialect's connect arguments.
_NOT_ASYNCPG: Final = ("prepared_statement_cache_size", "prepared_statement_name_func")

Woken = Callable[[frozenset[uuid.UUID] | None], None]


def connect_arguments(engine: AsyncEngine) -> dict[str, Any] | None:
    """asyncpg's arguments for a connection like the engine's; None if not asyncpg."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "asyncpg":
        return None
    _args, kwargs = engine.dialect.create_connect_args(engine.url)
    return {k: v for k, v in kwargs.items() if k not in _NOT_ASYNCPG}


async def listen(arguments: dict[str, Any], woken: Woken) -> None:
    """LISTEN until cancelled: `woken(endpoints)` for each other process's
    notification (None: any endpoint), and `woken(None)` at each (re)connection."""
    own = wake.NODE
    backoff = 1.0
    while True:
        try:
            await _listen_once(arguments, own, woken)
            backoff = 1.0  # it had connected
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning(
                "listening for webhook notifications failed; polling meanwhile",
                extra={"event": "webhook.listen_failed", "error_type": type(error).__name__},
            )
        await asyncio.sleep(backoff)
        backoff = min(_MOST_BACKOFF_SECONDS, backoff * 2)


async def _listen_once(arguments: dict[str, Any], own: str, woken: Woken) -> None:
    """One connection: listen until it is lost."""
    lost = asyncio.Event()

    def heard(_conn: object, _pid: int, _channel: str, text: str) -> None:
        node, endpoints = wake.parse(text)
        if node != own:  # this process's own commits woke it already
            woken(endpoints)

    connection = await asyncpg.connect(**arguments, timeout=_CONNECT_TIMEOUT_SECONDS)
    try:
        connection.add_termination_listener(lambda _conn: lost.set())
        await connection.add_listener(wake.CHANNEL, heard)
        woken(None)
        await lost.wait()
    finally:
        with contextlib.suppress(Exception):
            connection.terminate()
