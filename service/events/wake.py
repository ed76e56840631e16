"""Wake the dispatchers when a transaction that made work for them commits.

The outbox (service/events/outbox.py) and a redelivery `announce` their
deliveries. When that transaction commits (never when it rolls back):

- in this process, every subscribed callback runs with the endpoints that got
  deliveries, and the dispatcher sets its wake-up event unless it is already
  sending to all of them (its run's next claim, or the run's end, looks again);
- on PostgreSQL, every other process hears of it too: `announce` also sends a
  NOTIFY on CHANNEL in the same transaction, which PostgreSQL delivers to the
  listeners only when that transaction commits, and each dispatcher LISTENs on a
  connection of its own (service/events/listen.py). So the dispatcher of another
  app node, or `accord dispatch` run apart, claims the event within milliseconds
  too, instead of at its next poll (ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS, still
  the safety net when a notification is lost with its connection). The payload is
  this process's NODE id (its own dispatcher was woken already and ignores it) and
  the endpoint ids; no event content.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Final

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

CHANNEL: Final = "accord_webhooks"
NODE: Final = uuid.uuid4().hex  # this process, in its notifications
# More endpoints than this in one notification: named by none ("look at all").
_MOST_NAMED: Final = 100

_PENDING = "accord.events.wake.pending"
_LISTENING = "accord.events.wake.listening"
Callback = Callable[[frozenset[uuid.UUID]], None]
_callbacks: set[Callback] = set()


def subscribe(callback: Callback) -> None:
    _callbacks.add(callback)


def unsubscribe(callback: Callback) -> None:
    _callbacks.discard(callback)


async def announce(session: AsyncSession, endpoints: Iterable[uuid.UUID]) -> None:
    """Wake this process's dispatchers (`after_commit`) and, on PostgreSQL, those of
    every other process (a NOTIFY, delivered only if this transaction commits)."""
    named = set(endpoints)
    after_commit(session, named)
    if session.sync_session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(CHANNEL, payload(named))))


def payload(endpoints: set[uuid.UUID]) -> str:
    if len(endpoints) > _MOST_NAMED:
        return NODE
    return f"{NODE} {','.join(sorted(str(e) for e in endpoints))}"


def parse(text: str) -> tuple[str, frozenset[uuid.UUID] | None]:
    """(the sending node, the endpoints named); None: any endpoint may have work."""
    node, _, named = text.partition(" ")
    try:
        endpoints = frozenset(uuid.UUID(e) for e in named.split(",") if e)
    except ValueError:
        return node, None
    return node, endpoints or None


def after_commit(session: AsyncSession, endpoints: Iterable[uuid.UUID]) -> None:
    """Run the subscribed callbacks with these endpoints (and any others marked in
    the same transaction) once this session's transaction commits."""
    sync = session.sync_session
    sync.info.setdefault(_PENDING, set()).update(endpoints)
    if not sync.info.get(_LISTENING):
        sync.info[_LISTENING] = True
        event.listen(sync, "after_commit", _committed)
        event.listen(sync, "after_rollback", _rolled_back)


def _committed(sync: Session) -> None:
    endpoints = sync.info.pop(_PENDING, None)
    if endpoints:
        for callback in list(_callbacks):
            callback(frozenset(endpoints))


def _rolled_back(sync: Session) -> None:
    sync.info.pop(_PENDING, None)
