"""Event numbers are taken at the commit (issue 26; migration 0240), on both engines
unless a test needs two transactions open at once (PostgreSQL only: on SQLite
BEGIN IMMEDIATE serializes whole transactions, and `emit` numbers at once there).

- A transaction that emitted to an organization and is still open does not hold up
  another that emits to the same organization: the second commits first and takes
  the lower number; the feed stays gapless and in commit order, and a reader at the
  second's number then reads the first's.
- A rolled-back emit consumes no number.
- Many concurrent emitters to one organization get 1..N, each once, and every
  delivery carries its event's number.
- A transaction that stages an audit entry and emits an event commits, in either
  order of the two, beside others doing the opposite order and others appending at
  once: no deadlock (both commit-time triggers take the append queue first).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent, append
from service.audit.models import AuditEntry
from service.audit.ordering import lock_head, lock_policy, share_policy
from service.auth.principals import Role
from service.events.catalog import EventType
from service.events.models import Event, WebhookDelivery
from service.events.outbox import emit
from tests.events.support import feed, insert_endpoint
from tests.support.databases import TestDatabase
from tests.support.world import World

ORG = "shelter"
URL = "https://hooks.example.org/accord"  # never called: no dispatcher runs here


async def _emit(session: AsyncSession, world: World, at: datetime) -> uuid.UUID:
    (event_id,) = await emit(
        session,
        kind=EventType.referral_sent,
        to=[world.orgs[ORG]],
        object_type="referral",
        object_id=uuid.uuid4(),
        data={"status": "sent"},
        at=at,
    )
    return event_id


def _assert_gapless(items: list[dict[str, Any]]) -> None:
    assert [i["seq"] for i in items] == list(range(1, len(items) + 1))


async def _last_seq(client: httpx.AsyncClient, world: World) -> int:
    items = await feed(client, world, ORG)
    _assert_gapless(items)
    return len(items)


def _skip_on_sqlite(db: TestDatabase) -> None:
    if db.engine != "postgresql":
        pytest.skip("SQLite has one writer (BEGIN IMMEDIATE): transactions run one at a time")


async def test_an_open_emitter_does_not_hold_up_another_and_numbers_follow_commits(
    db: TestDatabase, app: Any, client: httpx.AsyncClient, world: World
) -> None:
    _skip_on_sqlite(db)
    last = await _last_seq(client, world)
    now = world.clock.now()
    first = app.state.sessionmaker()
    try:
        a_id = await _emit(first, world, now)  # A emits and stays open

        async def b() -> uuid.UUID:
            async with app.state.sessionmaker() as second:
                event_id = await _emit(second, world, now)
                await second.commit()
                return event_id

        # Before migration 0240 B's emit waited for A's counter row until A ended.
        b_id = await asyncio.wait_for(b(), timeout=10)
        after_b = await feed(client, world, ORG, after=last)
        assert [(i["id"], i["seq"]) for i in after_b] == [(str(b_id), last + 1)]
        cursor = after_b[-1]["seq"]
        await first.commit()
    finally:
        await first.close()
    assert [(i["id"], i["seq"]) for i in await feed(client, world, ORG, after=cursor)] == [
        (str(a_id), last + 2)
    ]
    _assert_gapless(await feed(client, world, ORG))


async def test_a_rolled_back_emit_consumes_no_number(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    last = await _last_seq(client, world)
    now = world.clock.now()
    async with app.state.sessionmaker() as session:
        await _emit(session, world, now)
        await session.rollback()
    async with app.state.sessionmaker() as session:
        kept = await _emit(session, world, now)
        await session.commit()
    items = await feed(client, world, ORG)
    _assert_gapless(items)
    assert (items[-1]["id"], items[-1]["seq"]) == (str(kept), last + 1)


async def test_concurrent_emitters_get_gapless_unique_numbers_on_events_and_deliveries(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    # An endpoint of the organization, so every event also gets a delivery.
    await insert_endpoint(app, world.orgs[ORG], URL, clock=world.clock)
    last = await _last_seq(client, world)
    now = world.clock.now()

    async def one() -> uuid.UUID:
        async with app.state.sessionmaker() as session:
            event_id = await _emit(session, world, now)
            await asyncio.sleep(0)  # let the others emit before this commits
            await session.commit()
            return event_id

    ids = await asyncio.gather(*(one() for _ in range(20)))
    items = await feed(client, world, ORG)
    _assert_gapless(items)
    assert {i["id"] for i in items[last:]} == {str(i) for i in ids}
    async with app.state.sessionmaker() as session:
        rows = (
            await session.execute(
                select(Event.seq, WebhookDelivery.event_seq)
                .join(WebhookDelivery, WebhookDelivery.event_id == Event.id)
                .where(Event.id.in_(ids))
            )
        ).all()
    assert len(rows) == 20
    assert all(seq == event_seq for seq, event_seq in rows)
    assert sorted(seq for seq, _ in rows) == list(range(last + 1, last + 21))


async def test_staging_and_emitting_in_either_order_side_by_side_never_deadlock(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    """20 transactions stage then emit, 20 emit then stage, 5 append at once (the
    append queue and head from that statement, as a referral transition) then emit:
    all at once. Every one commits; the feed and the audit log each grow by theirs."""
    last = await _last_seq(client, world)
    now = world.clock.now()
    async with app.state.sessionmaker() as session:
        entries_before = await session.scalar(select(func.count()).select_from(AuditEntry))

    def entry(name: str) -> AuditEvent:
        return AuditEvent(action="test.event", actor=None, actor_label=name)

    async def stage_then_emit(session: AsyncSession) -> None:
        await stage(session, entry("stage-first"), clock=world.clock)
        await _emit(session, world, now)

    async def emit_then_stage(session: AsyncSession) -> None:
        await _emit(session, world, now)
        await stage(session, entry("emit-first"), clock=world.clock)

    async def append_then_emit(session: AsyncSession) -> None:
        await lock_head(session)
        await append(session, entry("append-first"), clock=world.clock)
        await _emit(session, world, now)

    async def run(body: Callable[[AsyncSession], Awaitable[None]]) -> None:
        async with app.state.sessionmaker() as session:
            await body(session)
            await asyncio.sleep(0)
            await session.commit()

    bodies = [stage_then_emit, emit_then_stage] * 20 + [append_then_emit] * 5
    await asyncio.wait_for(asyncio.gather(*(run(b) for b in bodies)), timeout=120)
    items = await feed(client, world, ORG)
    _assert_gapless(items)
    assert len(items) == last + len(bodies)
    async with app.state.sessionmaker() as session:
        entries_after = await session.scalar(select(func.count()).select_from(AuditEntry))
    assert entries_after == (entries_before or 0) + len(bodies)


async def test_a_webhook_test_reply_carries_the_events_committed_number(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    """The test-fire path reads its event's number before its commit: it holds the
    append queue (lock_head) and numbers at once, so the reply's number is the feed's."""
    endpoint_id = (await insert_endpoint(app, world.orgs[ORG], URL, clock=world.clock)).id
    last = await _last_seq(client, world)
    r = await client.post(
        f"/v1/organizations/{world.orgs[ORG]}/webhooks/{endpoint_id}/test",
        headers=world.headers(ORG, Role.org_admin),
    )
    assert r.status_code == 202, r.text
    assert r.json()["event_seq"] == last + 1
    items = await feed(client, world, ORG)
    _assert_gapless(items)
    assert items[-1]["seq"] == last + 1
    assert items[-1]["type"] == EventType.webhook_test.value


async def test_numbering_at_once_needs_the_append_queue_not_only_the_policy_lock(
    db: TestDatabase, app: Any, world: World
) -> None:
    """`number_now` takes a counter row at once: only under the append queue
    (`lock_head`), never under the policy lock alone, which would take that row
    before the queue and invert the commit-time triggers' lock order."""
    if db.engine != "postgresql":
        pytest.skip("SQLite numbers at once always (BEGIN IMMEDIATE): there is no queue")

    async def emit_now(take: Callable[[AsyncSession], Awaitable[object]]) -> None:
        async with app.state.sessionmaker() as session:
            await take(session)
            await emit(
                session,
                kind=EventType.referral_sent,
                to=[world.orgs[ORG]],
                object_type="referral",
                object_id=uuid.uuid4(),
                data={"status": "sent"},
                at=world.clock.now(),
                number_now=True,
            )
            await session.rollback()

    with pytest.raises(RuntimeError, match="append queue"):
        await emit_now(lock_policy)
    with pytest.raises(RuntimeError, match="append queue"):
        await emit_now(share_policy)
    await emit_now(lock_head)  # allowed
