"""The dispatcher against real loopback receivers, on both engines, with the app's
injected clock: retries follow the schedule and keep the `webhook-id`, nothing is
lost, the last failure marks the endpoint failing, a receiver that never answers
does not delay another organization's deliveries, and the metrics say so."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from standardwebhooks import Webhook

from service.auth.principals import Role
from service.clock import FrozenClock
from service.events.models import WebhookAttempt, WebhookDelivery
from service.events.schedule import JITTER, MAX_ATTEMPTS, RETRY_DELAYS_SECONDS
from service.settings import Settings
from service.web.observability import JsonFormatter
from tests.events.support import (
    Receiver,
    attempts,
    deliveries,
    dispatcher,
    emit_events,
    hook_settings,
    idle,
    receivers,
    register,
)
from tests.support.databases import TestDatabase
from tests.support.processes import free_port
from tests.support.world import World


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return hook_settings(db, key_dir)


def _by_event(rows: list[WebhookDelivery]) -> dict[uuid.UUID, WebhookDelivery]:
    return {row.event_id: row for row in rows}


async def _metrics(
    client: httpx.AsyncClient,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = (await client.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _signed_v1(secret: str, request: Any) -> bool:
    """The v1 signature as the standardwebhooks package computes it for this id,
    timestamp and body (its verify() also checks the timestamp against the real clock,
    which an injected clock is far from)."""
    at = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.webhook_id, at, request.body)
    return expected in request.headers["webhook-signature"].split(" ")


async def test_receiver_down_then_up_retries_on_the_schedule_with_the_same_webhook_id(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    with Receiver() as receiver:
        hook = await register(client, world, "vsp", receiver.url())
        receiver.status = 503  # down
        one, two = uuid.uuid4(), uuid.uuid4()
        first, second, other = await emit_events(
            app, world.orgs["vsp"], [one, one, two], at=clock.now()
        )
        created = clock.now()
        async with dispatcher(app) as running:
            # The first event of each object; the second of `one` waits behind the first.
            assert await idle(running) == 2
            for step in range(1, 5):
                rows = _by_event(await deliveries(app))
                base = RETRY_DELAYS_SECONDS[step - 1]
                for event in (first, other):
                    wait = (rows[event].next_attempt_at - clock.now()).total_seconds()
                    assert base * (1 - JITTER) <= wait <= base * (1 + JITTER), (step, wait)
                    assert rows[event].attempts == step
                assert rows[second].attempts == 0
                due = [rows[first].next_attempt_at, rows[other].next_attempt_at]
                clock.set(min(due) - timedelta(seconds=1))
                assert await idle(running) == 0  # nothing before its time
                clock.set(max(due))
                assert await idle(running) == 2
            metrics = await _metrics(client)
            assert metrics[("accord_webhook_deliveries_pending", ())] == 3
            age = (clock.now() - created).total_seconds()
            assert metrics[("accord_webhook_oldest_pending_age_seconds", ())] == age
            receiver.status = 200  # up again
            rows = _by_event(await deliveries(app))
            clock.set(max(rows[first].next_attempt_at, rows[other].next_attempt_at))
            # Both retried, then the second event of `one`, now first in its line.
            assert await idle(running) == 3
        received = list(receiver.requests)

    ids = [r.webhook_id for r in received]
    assert ids.count(str(first)) == 6  # nothing lost
    assert ids.count(str(other)) == 6
    assert ids.count(str(second)) == 1
    assert ids.index(str(second)) > max(i for i, x in enumerate(ids) if x == str(first))
    assert (
        len({r.headers["webhook-timestamp"] for r in received if r.webhook_id == str(first)}) == 6
    )
    assert all(r.json()["id"] == r.webhook_id and _signed_v1(hook.secret, r) for r in received)
    rows = _by_event(await deliveries(app))
    assert {row.status for row in rows.values()} == {"succeeded"}
    history = await attempts(app, rows[first].id)
    assert [a.status_code for a in history] == [503] * 5 + [200]
    assert [str(int(a.at.timestamp())) for a in history] == [
        r.headers["webhook-timestamp"] for r in received if r.webhook_id == str(first)
    ]
    metrics = await _metrics(client)
    assert metrics[("accord_webhook_deliveries_pending", ())] == 0
    assert (
        metrics[("accord_webhook_attempts_total", (("outcome", "retry"), ("result", "5xx")))] == 10
    )
    assert (
        metrics[("accord_webhook_attempts_total", (("outcome", "succeeded"), ("result", "2xx")))]
        == 3
    )


async def test_after_the_last_retry_the_delivery_fails_and_its_admin_sees_the_endpoint_failing(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: refused
    hook = await register(client, world, "vsp", dead)
    await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
    first_try = clock.now()
    async with dispatcher(app) as running:
        for _ in range(MAX_ATTEMPTS):
            (row,) = await deliveries(app)
            assert row.status == "pending"
            clock.set(row.next_attempt_at)
            assert await idle(running) == 1
        (row,) = await deliveries(app)
        assert (row.status, row.attempts, row.last_error) == ("failed", MAX_ATTEMPTS, "refused")
        span = (clock.now() - first_try).total_seconds()
        total = sum(RETRY_DELAYS_SECONDS)
        assert total * (1 - JITTER) <= span <= total * (1 + JITTER)
        assert span > 2.5 * 86400  # about three days
        failing_since = clock.now()
        clock.advance(3600)
        assert await idle(running) == 0  # given up: never tried again

        admin = world.headers("vsp", Role.org_admin)
        path = f"/v1/organizations/{world.orgs['vsp']}/webhooks/{hook.id}"
        seen = (await client.get(path, headers=admin)).json()
        assert datetime.fromisoformat(seen["failing_since"]) == failing_since
        metrics = await _metrics(client)
        assert metrics[("accord_webhook_endpoints_failing", ())] == 1
        assert (
            metrics[
                ("accord_webhook_attempts_total", (("outcome", "failed"), ("result", "refused")))
            ]
            == 1
        )

        with Receiver() as receiver:  # the admin fixes the URL; the next success clears it
            r = await client.patch(path, json={"url": receiver.url()}, headers=admin)
            assert r.status_code == 200, r.text
            await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
            assert await idle(running) == 1
            assert len(receiver.requests) == 1
        assert (await client.get(path, headers=admin)).json()["failing_since"] is None
        assert (await _metrics(client))[("accord_webhook_endpoints_failing", ())] == 0


async def test_an_endpoint_that_never_answers_does_not_delay_another_organizations_deliveries(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    timeout = 2.0
    with receivers(2) as (slow, fast):
        slow.hang = True
        await register(client, world, "vsp", slow.url())
        await register(client, world, "shelter", fast.url())
        await emit_events(app, world.orgs["vsp"], [uuid.uuid4() for _ in range(4)], at=clock.now())
        same = uuid.uuid4()
        await emit_events(
            app, world.orgs["shelter"], [uuid.uuid4(), same, same, uuid.uuid4()], at=clock.now()
        )
        # Two slots in all: the slow endpoint may hold one, never both.
        async with dispatcher(app, concurrency=2, timeout=timeout, interval=0.05) as running:
            started = time.monotonic()
            task = asyncio.create_task(running.run())
            try:
                got = await fast.wait_for(4, within=timeout)
                assert max(r.at for r in got) - started < timeout - 0.5
                assert slow.most_held == 1  # one request at a time to one endpoint
                timed_out = await _wait_for_attempt(app, "timeout", within=timeout + 5)
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    assert timed_out.duration_ms >= timeout * 1000 * 0.9
    assert timed_out.status_code is None


async def _wait_for_attempt(app: Any, error: str, *, within: float) -> WebhookAttempt:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with app.state.sessionmaker() as session:
            found = await session.scalar(
                select(WebhookAttempt).where(WebhookAttempt.error == error)
            )
            await session.commit()
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no attempt ended with {error}")


async def test_logs_name_ids_and_outcomes_never_urls_bodies_or_secrets(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = "/planted-hook-path?token=planted-query-secret"
    with receivers(2) as (ok, failing):
        failing.status = 500
        hooks = [
            await register(client, world, "vsp", ok.url(path)),
            await register(client, world, "shelter", failing.url(path)),
        ]
        events = [
            *await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now()),
            *await emit_events(app, world.orgs["shelter"], [uuid.uuid4()], at=clock.now()),
        ]
        caplog.set_level(logging.INFO, logger="accord.events")
        async with dispatcher(app) as running:
            assert await idle(running) == 2
        bodies = [r.body.decode() for r in [*ok.requests, *failing.requests]]

    lines = [
        JsonFormatter().format(r) for r in caplog.records if r.name.startswith("accord.events")
    ]
    text = "\n".join(lines)
    forbidden = ["planted-hook-path", "planted-query-secret", "127.0.0.1", *bodies]
    forbidden += [hook.secret.removeprefix("whsec_") for hook in hooks]
    assert not [f for f in forbidden if f in text]
    logged = [json.loads(line) for line in lines]
    assert sorted(entry["outcome"] for entry in logged) == ["retry", "succeeded"]
    assert {entry["event_id"] for entry in logged} == {str(e) for e in events}
    assert all(uuid.UUID(entry["delivery_id"]) for entry in logged)
    assert sorted(str(entry.get("status")) for entry in logged) == ["204", "500"]
