"""The policy lock and the append queue in front of the audit head on PostgreSQL
(migration 0100). Release decisions hold the policy lock shared and run side by
side; every other transaction that locks the head, and every write the policy-epoch
trigger watches, holds it exclusively; appends wait in an advisory lock that
PostgreSQL grants in arrival order (a row lock lets a newcomer overtake waiters).
SQLite has a single writer (BEGIN IMMEDIATE) and none of this."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.audit.ordering import lock_head, share_policy
from tests.support.databases import TestDatabase

POLICY, QUEUE = 0, 1
HELD = text(
    "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = 'audit_head'::regclass::oid AND objid = :key"
)
WAITING = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND classid = 'audit_head'::regclass::oid"
)


def _postgresql_only(db: TestDatabase) -> None:
    if db.engine != "postgresql":
        pytest.skip("SQLite has one writer (BEGIN IMMEDIATE): no policy lock or queue")


async def _held(session: AsyncSession, key: int) -> set[str]:
    return set((await session.scalars(HELD, {"key": key})).all())


async def _waiters(app: Any, count: int) -> None:
    """Until `count` transactions wait for the policy lock or the append queue."""
    for _ in range(500):
        async with app.state.sessionmaker() as probe:
            if await probe.scalar(WAITING) == count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} waiters")


async def _would_wait(session: AsyncSession, call: Any) -> bool:
    """Whether `call` in `session` waits for a lock (200 ms), then roll it back."""
    await session.execute(text("SET LOCAL lock_timeout = '200ms'"))
    failure: DBAPIError | None = None
    try:
        await call(session)
    except DBAPIError as exc:
        failure = exc
    await session.rollback()
    if failure is not None and "lock timeout" not in str(failure):
        raise failure
    return failure is not None


def _event(name: str) -> AuditEvent:
    return AuditEvent(action="test.event", actor=None, actor_label=name)


async def test_lock_head_holds_the_policy_lock_the_queue_and_the_row(
    app: Any, db: TestDatabase
) -> None:
    _postgresql_only(db)
    async with app.state.sessionmaker() as holder, app.state.sessionmaker() as other:
        head = await lock_head(holder)
        assert head.size == 0
        assert await _held(holder, POLICY) == {"ExclusiveLock"}
        assert await _held(holder, QUEUE) == {"ExclusiveLock"}
        assert await _would_wait(other, share_policy)  # no release decides meanwhile
        await holder.commit()
        assert not await _would_wait(other, share_policy)


async def test_releases_decide_side_by_side_and_exclude_changes(app: Any, db: TestDatabase) -> None:
    _postgresql_only(db)
    factory = app.state.sessionmaker
    async with factory() as first, factory() as second, factory() as change:
        assert await share_policy(first) == await share_policy(second) == 0
        assert await _held(first, POLICY) == {"ShareLock"}
        assert await _held(first, QUEUE) == set()  # the head is not held while deciding
        assert await _would_wait(change, lock_head)  # a change waits for both releases
        await first.commit()
        assert await _would_wait(change, lock_head)
        await second.commit()
        assert not await _would_wait(change, lock_head)


async def test_a_waiting_change_is_not_overtaken_by_new_releases(
    app: Any, db: TestDatabase
) -> None:
    """A change waits for the releases in flight, and releases arriving after it
    wait behind it: a stream of deliveries cannot starve a revocation."""
    _postgresql_only(db)
    factory = app.state.sessionmaker
    async with factory() as release, factory() as change, factory() as later:
        await share_policy(release)
        waiting = asyncio.create_task(lock_head(change))
        await _waiters(app, 1)
        assert await _would_wait(later, share_policy)
        await release.commit()
        await asyncio.wait_for(waiting, timeout=10)
        await change.rollback()


async def test_appends_of_releases_are_served_in_arrival_order(app: Any, db: TestDatabase) -> None:
    _postgresql_only(db)
    order: list[str] = []

    async def release(name: str, session: AsyncSession) -> None:
        await share_policy(session)
        await append(session, _event(name), clock=app.state.clock)
        order.append(name)
        await session.commit()

    factory = app.state.sessionmaker
    async with factory() as first, factory() as second, factory() as third:
        await share_policy(first)
        await lock_head(first)  # to append: the queue and the row, not the policy lock
        assert await _held(first, POLICY) == {"ShareLock"}
        assert await _held(first, QUEUE) == {"ExclusiveLock"}
        b = asyncio.create_task(release("second", second))
        await _waiters(app, 1)
        c = asyncio.create_task(release("third", third))
        await _waiters(app, 2)
        await append(first, _event("first"), clock=app.state.clock)
        order.append("first")
        await first.commit()
        await asyncio.wait_for(asyncio.gather(b, c), timeout=10)
    assert order == ["first", "second", "third"]


async def test_policy_epoch_trigger_holds_the_policy_lock(app: Any, db: TestDatabase) -> None:
    _postgresql_only(db)
    async with app.state.sessionmaker() as session:
        await session.execute(text("UPDATE organizations SET active = active"))
        assert await _held(session, POLICY) == {"ExclusiveLock"}
        assert await _held(session, QUEUE) == {"ExclusiveLock"}
        await session.rollback()


async def test_a_watched_write_waits_for_a_release_in_flight(app: Any, db: TestDatabase) -> None:
    """API.md "Ordering": a change to a release's inputs (here an organization's
    status, through the policy-epoch trigger; memberships, agreements and rules have
    the same trigger) cannot commit while a release that has started reading holds
    the policy lock; once the release ends, it goes through."""
    _postgresql_only(db)
    factory = app.state.sessionmaker

    async def deactivate(session: AsyncSession) -> None:
        await session.execute(text("UPDATE organizations SET active = active"))

    async with factory() as release, factory() as change:
        await share_policy(release)
        assert await _would_wait(change, deactivate)
        await release.commit()
        assert not await _would_wait(change, deactivate)


async def test_a_watched_write_and_an_append_queue_without_deadlock(
    app: Any, db: TestDatabase
) -> None:
    """A transaction that moved the epoch (head row locked by the trigger) and then
    appends, while another append waits: one lock order, so both finish. Without the
    locks in the trigger, PostgreSQL would find a deadlock here and abort one."""
    _postgresql_only(db)
    factory = app.state.sessionmaker
    async with factory() as writer, factory() as appender:
        await writer.execute(text("UPDATE organizations SET active = active"))
        waiting = asyncio.create_task(append(appender, _event("waiting"), clock=app.state.clock))
        await _waiters(app, 1)
        await append(writer, _event("writer"), clock=app.state.clock)
        await writer.commit()
        entry = await asyncio.wait_for(waiting, timeout=10)
        await appender.commit()
    assert entry.seq == 1
