"""The in-process dispatcher is woken by the commit of a change that emitted events
(service/events/wake.py), not by its poll, and sends a backlog to one endpoint in
runs (service/events/claims.py) with every guarantee kept."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.clock import FrozenClock
from service.events import claims
from service.settings import Settings
from tests.events.support import (
    Receiver,
    deliveries,
    dispatcher,
    emit_events,
    hook_settings,
    idle,
    register,
)
from tests.support.databases import TestDatabase
from tests.support.world import World


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return hook_settings(db, key_dir)


async def test_a_committed_event_wakes_the_dispatcher_long_before_its_poll(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    with Receiver() as receiver:
        await register(client, world, "vsp", receiver.url())
        async with dispatcher(app, interval=30.0) as running:
            task = asyncio.create_task(running.run())
            try:
                await asyncio.sleep(0.3)  # the first pass found nothing; next poll in 30 s
                started = time.monotonic()
                events = await emit_events(
                    app, world.orgs["vsp"], [uuid.uuid4() for _ in range(3)], at=clock.now()
                )
                got = await receiver.wait_for(3, within=5.0)
                assert time.monotonic() - started < 5.0
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    assert sorted(r.webhook_id for r in got) == sorted(str(e) for e in events)


async def test_a_backlog_to_one_endpoint_goes_in_runs_in_order_each_once(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    objects = [a, b, a, c, b, a, c, a, b, c] + [uuid.uuid4() for _ in range(30)]
    with Receiver() as receiver:
        await register(client, world, "vsp", receiver.url())
        events = await emit_events(app, world.orgs["vsp"], objects, at=clock.now())
        async with dispatcher(app) as running:
            passes = 0
            while await running.dispatch_pass() or running._in_flight:
                passes += 1
                await asyncio.wait(list(running._in_flight.values()))
            await idle(running)
        received = list(receiver.requests)
    assert sorted(r.webhook_id for r in received) == sorted(str(e) for e in events)
    assert {(r.status, r.attempts) for r in await deliveries(app)} == {("succeeded", 1)}
    seqs: dict[str, list[int]] = {}
    for request in received:
        body = request.json()
        seqs.setdefault(body["object_id"], []).append(body["seq"])
    assert all(s == sorted(s) for s in seqs.values()), seqs
    # Runs of 1, 2, 4, ... (heads of distinct objects): far fewer claims than events.
    assert passes < len(events) // 2, passes


async def _runs_for_trickle(
    app: Any, world: World, clock: FrozenClock, receiver: Receiver, coalesce: float
) -> int:
    """After a first commit, ten commits 30 ms apart to a dispatcher running with this
    window: how many claims took the ten (a counting wrapper around the real claim)."""
    real = claims.claim
    took: list[int] = []

    async def counting(*args: Any, **kwargs: Any) -> list[claims.Claim]:
        claimed = await real(*args, **kwargs)
        if claimed:
            took.append(len(claimed))
        return claimed

    before = len(receiver.requests)
    async with dispatcher(app, interval=30.0, coalesce=coalesce) as running:
        task = asyncio.create_task(running.run())
        try:
            await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
            await receiver.wait_for(before + 1, within=10.0)  # a quiet spell's first: not counted
            claims.claim = counting  # type: ignore[assignment]
            try:
                for _ in range(10):
                    await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
                    await asyncio.sleep(0.03)
                got = await receiver.wait_for(before + 11, within=10.0)
            finally:
                claims.claim = real  # type: ignore[assignment]
        finally:
            running.stop()
            await task
    assert len({r.webhook_id for r in got[before:]}) == 11
    assert sum(took) == 10, took
    return len(took)


async def test_commits_of_one_moment_share_a_run_within_the_coalescing_window(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    """Commits 30 ms apart: each its own run without a window (a claim and a record
    transaction per event); with a 1 s window, the ten share a few runs, every
    event still sent once."""
    with Receiver() as receiver:
        await register(client, world, "vsp", receiver.url())
        apart = await _runs_for_trickle(app, world, clock, receiver, coalesce=0.0)
        together = await _runs_for_trickle(app, world, clock, receiver, coalesce=1.0)
    assert apart >= 6, (apart, together)
    # The first of the ten may still find the quiet spell's run going on (a run that
    # emptied nothing chains one more claim): three at most, not one per commit.
    assert together <= 3, (apart, together)
