"""The request's database session and clock, as Annotated aliases (STYLE.md rule 2).

`DbSession` is one transaction per request: committed once after the route returns
and before the response is sent, or rolled back (STYLE.md rule 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from service.clock import Clock
from service.db.engine import session_scope


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessionmaker) as session:
        yield session


# scope="function": the commit runs before the response is sent, so a client never
# sees 2xx for a transaction that then failed to commit (measured: with the default
# request scope a failing commit still produced 200).
DbSession = Annotated[AsyncSession, Depends(_session, scope="function")]


# Async, as every dependency here: FastAPI runs a plain `def` dependency in its
# thread pool, a hand-off to another thread on every request.
async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


AppClock = Annotated[Clock, Depends(get_clock)]
