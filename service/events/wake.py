"""Wake this process's dispatcher when a transaction that made work for it commits.

The outbox (service/events/outbox.py) and a redelivery mark their session; when
that session's transaction commits (never when it rolls back) every subscribed
callback runs with the endpoints that got deliveries, and the dispatcher sets its
wake-up event unless it is already sending to all of them (it looks again when a
run ends), so an event is claimed within milliseconds of its commit instead of at
the next poll. Only the process
that committed hears of it: another node's dispatcher finds the work at its next
poll (ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS), as does `accord dispatch` run apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

_PENDING = "accord.events.wake.pending"
_LISTENING = "accord.events.wake.listening"
Callback = Callable[[frozenset[uuid.UUID]], None]
_callbacks: set[Callback] = set()


def subscribe(callback: Callback) -> None:
    _callbacks.add(callback)


def unsubscribe(callback: Callback) -> None:
    _callbacks.discard(callback)


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
