"""`accord dispatch` as real processes on the test's database: one killed with
SIGKILL in the middle of a batch leaves nothing undelivered once it is restarted
(what was in flight is sent again, with the same `webhook-id`), and two at once on
one PostgreSQL deliver every event exactly once in a normal run (counted at the
receiver)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.clock import FrozenClock
from service.settings import Settings
from tests.events.support import (
    LOOPBACK,
    Receiver,
    deliveries,
    emit_events,
    hook_settings,
    register,
)
from tests.support.databases import TestDatabase
from tests.support.processes import ROOT, service_env
from tests.support.world import World


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return hook_settings(db, key_dir)


async def _dispatcher_process(
    db: TestDatabase, key_dir: Path, log: Path, **env: str
) -> asyncio.subprocess.Process:
    """`accord dispatch` in its own process, started (its log says so) when this returns."""
    settings = {
        "ACCORD_WEBHOOK_ALLOWED_NETWORKS": ",".join(LOOPBACK),
        "ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.05",
        "ACCORD_LOG_LEVEL": "WARNING",
        **env,
    }
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from service.cli import main; main()", "dispatch",
            cwd=ROOT, env=service_env(db, key_dir, **settings),
            stdout=asyncio.subprocess.DEVNULL, stderr=out,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while b"dispatching" not in (output := await asyncio.to_thread(log.read_bytes)):
        if process.returncode is not None or time.monotonic() > deadline:
            raise AssertionError(f"accord dispatch did not start: {output.decode()}")
        await asyncio.sleep(0.05)
    return process


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM: the dispatcher stops between two database operations and exits 0."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=15)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("accord dispatch did not stop on SIGTERM") from None
    assert process.returncode == 0


async def _all_delivered(app: Any, count: int, *, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        rows = await deliveries(app)
        if len(rows) == count and all(r.status == "succeeded" for r in rows):
            return
        if time.monotonic() > deadline:
            states = sorted((r.status, r.attempts) for r in rows)
            raise AssertionError(f"not all delivered: {states}")
        await asyncio.sleep(0.1)


@pytest.mark.crash
async def test_a_dispatcher_killed_mid_batch_delivers_everything_after_a_restart(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    clock: FrozenClock,
    db: TestDatabase,
    key_dir: Path,
    tmp_path: Path,
) -> None:
    orgs = ("vsp", "shelter", "police", "prosecutor")
    env = {"ACCORD_WEBHOOK_TIMEOUT_SECONDS": "2", "ACCORD_WEBHOOK_LEASE_SECONDS": "3"}
    with Receiver() as receiver:
        receiver.hang = True  # the first batch never gets an answer
        events = []
        for org in orgs:
            await register(client, world, org, receiver.url(f"/hooks/{org}"))
            objects = [uuid.uuid4() for _ in range(3)]
            events += await emit_events(app, world.orgs[org], objects, at=clock.now())
        log = tmp_path / "dispatch.log"
        first = await _dispatcher_process(db, key_dir, log, **env)
        try:
            await receiver.wait_held(len(orgs))  # one request in flight per endpoint
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        in_flight = set(receiver.ids())
        assert len(in_flight) == len(orgs)
        now = datetime.now(UTC)
        leased = [r for r in await deliveries(app) if r.next_attempt_at > now]
        assert {str(r.event_id) for r in leased} == in_flight  # claimed, never recorded
        assert all((r.status, r.attempts) == ("pending", 0) for r in leased)

        receiver.release()  # the receiver answers from now on
        second = await _dispatcher_process(db, key_dir, log, **env)
        try:
            await _all_delivered(app, len(events))
        finally:
            await _stop(second)
        ids = receiver.ids()

    assert set(ids) == {str(e) for e in events}  # every event at least once
    for event in events:
        # What was in flight at the kill came again with the same webhook-id.
        assert ids.count(str(event)) == (2 if str(event) in in_flight else 1)


@pytest.mark.race
async def test_two_dispatchers_on_one_postgresql_deliver_each_event_exactly_once(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    clock: FrozenClock,
    db: TestDatabase,
    key_dir: Path,
    tmp_path: Path,
) -> None:
    if db.engine != "postgresql":
        pytest.skip("on SQLite exactly one process dispatches (docs/configuration.md)")
    orgs = ("vsp", "shelter", "police")
    with Receiver() as receiver:
        receiver.hang = True  # until both dispatchers are seen at work at once
        events = []
        for org in orgs:
            await register(client, world, org, receiver.url(f"/hooks/{org}"))
            a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            objects = [a, b, a, c, b, a, c, a, b, c]  # one object's events in order, per endpoint
            events += await emit_events(app, world.orgs[org], objects, at=clock.now())
        # One request in flight per process: two held at once means both dispatch.
        env = {"ACCORD_WEBHOOK_DISPATCH_CONCURRENCY": "1"}
        processes = await asyncio.gather(
            *(
                _dispatcher_process(db, key_dir, tmp_path / f"dispatch-{i}.log", **env)
                for i in (1, 2)
            )
        )
        try:
            await receiver.wait_held(2)
            receiver.release()
            await _all_delivered(app, len(events))
        finally:
            for process in processes:
                await _stop(process)
        received = list(receiver.requests)

    ids = [r.webhook_id for r in received]
    assert sorted(ids) == sorted(str(e) for e in events)  # each exactly once
    assert {r.attempts for r in await deliveries(app)} == {1}
    seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for request in received:
        body = request.json()
        seqs[(request.path, body["object_id"])].append(body["seq"])
    assert all(s == sorted(s) for s in seqs.values()), seqs


async def test_another_processs_commit_wakes_accord_dispatch_by_notify_long_before_its_poll(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    clock: FrozenClock,
    db: TestDatabase,
    key_dir: Path,
    tmp_path: Path,
) -> None:
    if db.engine != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite one process dispatches")
    with Receiver() as receiver:
        await register(client, world, "vsp", receiver.url())
        env = {"ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "60"}
        process = await _dispatcher_process(db, key_dir, tmp_path / "dispatch.log", **env)
        try:
            await asyncio.sleep(1.0)  # its first pass and its LISTEN are done; next poll in 60 s
            for round_ in range(1, 4):  # this test's process commits; only a NOTIFY tells it
                started = time.monotonic()
                (event,) = await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
                got = await receiver.wait_for(round_, within=10.0)
                assert time.monotonic() - started < 10.0
                assert got[-1].webhook_id == str(event)
                await asyncio.sleep(0.5)  # the dispatcher at rest again
        finally:
            await _stop(process)
    assert {r.attempts for r in await deliveries(app)} == {1}
