"""The fair queue in front of the audit head on PostgreSQL (migration 0100): every
path that locks the head row takes a transaction-scoped advisory lock first, which
PostgreSQL grants in arrival order (a row lock lets a newcomer overtake waiters).
SQLite has a single writer (BEGIN IMMEDIATE) and no such queue."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append, lock_head
from tests.support.databases import TestDatabase

QUEUE_HELD = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = 'audit_head'::regclass::oid AND objid = 1"
)
TRY_QUEUE = text("SELECT pg_try_advisory_xact_lock(('audit_head'::regclass)::oid::int, 1)")


def _postgresql_only(db: TestDatabase) -> None:
    if db.engine != "postgresql":
        pytest.skip("SQLite has one writer (BEGIN IMMEDIATE): no queue in front of the head")


async def _waiting_on_queue(app: Any, count: int) -> None:
    """Until `count` backends wait for the head queue (advisory lock not granted)."""
    for _ in range(500):
        async with app.state.sessionmaker() as probe:
            waiting = await probe.scalar(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND NOT granted AND classid = 'audit_head'::regclass::oid AND objid = 1"
                )
            )
        if waiting == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} waiters on the head queue")


async def test_lock_head_takes_the_queue_then_the_row(app: Any, db: TestDatabase) -> None:
    _postgresql_only(db)
    async with app.state.sessionmaker() as holder, app.state.sessionmaker() as other:
        head = await lock_head(holder)
        assert head.size == 0
        assert await holder.scalar(QUEUE_HELD) == 1
        assert await other.scalar(TRY_QUEUE) is False  # held until the holder ends
        await holder.commit()
        assert await other.scalar(TRY_QUEUE) is True
        await other.rollback()


async def test_policy_epoch_trigger_takes_the_queue_first(app: Any, db: TestDatabase) -> None:
    _postgresql_only(db)
    async with app.state.sessionmaker() as session:
        await session.execute(text("UPDATE organizations SET active = active"))
        assert await session.scalar(QUEUE_HELD) == 1
        await session.rollback()


async def test_waiters_are_served_in_arrival_order(app: Any, db: TestDatabase) -> None:
    _postgresql_only(db)
    order: list[str] = []

    async def append_as(name: str, session: AsyncSession) -> None:
        await append(
            session,
            AuditEvent(action="test.event", actor=None, actor_label=name),
            clock=app.state.clock,
        )
        order.append(name)
        await session.commit()

    factory = app.state.sessionmaker
    async with factory() as first, factory() as second, factory() as third:
        await lock_head(first)
        b = asyncio.create_task(append_as("second", second))
        await _waiting_on_queue(app, 1)
        c = asyncio.create_task(append_as("third", third))
        await _waiting_on_queue(app, 2)
        await append_as("first", first)
        await asyncio.wait_for(asyncio.gather(b, c), timeout=10)
    assert order == ["first", "second", "third"]


async def test_a_watched_write_and_an_append_queue_without_deadlock(
    app: Any, db: TestDatabase
) -> None:
    """A transaction that moved the epoch (head row locked by the trigger) and then
    appends, while another append waits: one lock order, so both finish. Without the
    queue in the trigger, PostgreSQL would find a deadlock here and abort one."""
    _postgresql_only(db)
    factory = app.state.sessionmaker
    async with factory() as writer, factory() as appender:
        await writer.execute(text("UPDATE organizations SET active = active"))
        waiting = asyncio.create_task(
            append(
                appender,
                AuditEvent(action="test.event", actor=None, actor_label="waiting"),
                clock=app.state.clock,
            )
        )
        await _waiting_on_queue(app, 1)
        await append(
            writer,
            AuditEvent(action="test.event", actor=None, actor_label="writer"),
            clock=app.state.clock,
        )
        await writer.commit()
        entry = await asyncio.wait_for(waiting, timeout=10)
        await appender.commit()
    assert entry.seq == 1
