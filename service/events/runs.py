"""One endpoint's run of claimed deliveries: each attempt signed and sent (Sender),
in turn (send_run), and each attempt's log line and metric.

A run holds deliveries of distinct objects (service/events/claims.py), so their
order at the receiver does not matter, and send_run can keep up to
SENDS_PER_ENDPOINT requests in flight at once. It is 1: on loopback, four at once
took twice the time of one at a time for a backlog of 200 (the receiver's and the
service's CPU, not the network, bound each request there), and one at a time
keeps a slow endpoint to one connection. A failed attempt ends the run: no send
starts after it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final

from service.clock import Clock
from service.crypto import Signer, open_secret
from service.events import signing
from service.events.attempt import Outcome, new_client, post
from service.events.claims import Backlog, Claim, Recorded, Result
from service.events.dispatch_config import DispatchConfig
from service.events.schedule import Uniform, retry_delay
from service.web.observability import Metrics

log = logging.getLogger("accord.events.dispatch")

# At most this many requests in flight to one endpoint at once (see above).
SENDS_PER_ENDPOINT: Final = 1

# One attempt; None when it was abandoned (the dispatcher is stopping).
Send = Callable[[Claim, datetime], Awaitable[Outcome | None]]


class Sender:
    """Signs and sends attempts over one pooled HTTP client (keep-alive connections,
    at most SENDS_PER_ENDPOINT per endpoint slot); `abandon()` cuts short those in
    flight and any later one."""

    def __init__(self, config: DispatchConfig, *, signer: Signer, secrets_key: bytes) -> None:
        self._config = config
        self._signer = signer
        self._secrets_key = secrets_key
        self._client = new_client(
            config.allowed,
            connect_timeout=config.connect_timeout,
            connections=config.concurrency * SENDS_PER_ENDPOINT,
        )
        self._sends: dict[uuid.UUID, asyncio.Task[Outcome]] = {}  # by delivery
        self._abandoned = False

    def _headers(self, item: Claim, timestamp: int) -> dict[str, str]:
        secrets = [open_secret(self._secrets_key, sealed) for sealed in item.secrets_sealed]
        return signing.headers(
            str(item.event_id), timestamp, item.body, secrets=secrets, signer=self._signer
        )

    async def send(self, item: Claim, attempted_at: datetime) -> Outcome | None:
        """One attempt; None when `abandon()` cut it short."""
        if self._abandoned:
            return None
        try:
            headers = self._headers(item, int(attempted_at.timestamp()))
        except Exception as error:  # noqa: BLE001 - a secret sealed under another key
            # Nothing is sent unsigned: a failed attempt, on the schedule, so the
            # endpoint ends up failing where its admin sees it.
            log.error(
                "a webhook secret could not be opened (was the key directory replaced?)",
                extra={"event": "webhook.secret_unopenable", "error_type": type(error).__name__},
            )
            return Outcome(None, "secret", 0)
        send = asyncio.create_task(
            post(
                self._client,
                item.url,
                body=item.body,
                headers=headers,
                total_timeout=self._config.timeout,
                require_https=self._config.require_https,
            )
        )
        self._sends[item.delivery_id] = send
        try:
            return await send
        except asyncio.CancelledError:
            if send.cancelled() and self._abandoned:
                return None
            raise
        finally:
            self._sends.pop(item.delivery_id, None)

    def abandon(self) -> None:
        self._abandoned = True
        for send in self._sends.values():
            send.cancel()

    async def aclose(self) -> None:
        await self._client.aclose()


async def send_run(
    run: list[Claim],
    *,
    send: Send,
    may_start: Callable[[int], bool],
    clock: Clock,
    uniform: Uniform,
) -> tuple[list[Result], list[Claim]]:
    """Send the run, at most SENDS_PER_ENDPOINT at once, the claim at index i only if
    `may_start(i)` then (the dispatcher is not stopping, the send would end within
    the lease); none after a failure. The results in the run's order, and the claims
    never sent (to release). A send abandoned is in neither: still leased, it is sent
    again after the lease."""
    results: dict[int, Result] = {}
    waiting = list(enumerate(run))
    ended = False

    async def sender() -> None:
        nonlocal ended
        while waiting and not ended:
            index, item = waiting[0]
            if not may_start(index):
                ended = True
                return
            waiting.pop(0)
            attempted_at = clock.now()
            outcome = await send(item, attempted_at)
            if outcome is None:
                ended = True
                return
            delay = None if outcome.ok else retry_delay(item.attempts + 1, uniform)
            retry_at = clock.now() + delay if delay is not None else None
            results[index] = Result(item, outcome, attempted_at, retry_at)
            ended = ended or not outcome.ok

    async with asyncio.TaskGroup() as senders:
        for _ in range(min(SENDS_PER_ENDPOINT, len(run))):
            senders.create_task(sender())
    return [results[i] for i in sorted(results)], [item for _, item in waiting]


def log_attempt(metrics: Metrics | None, result: Result, recorded: Recorded) -> None:
    """The attempt's log line (ids and outcome only) and its count in the metrics."""
    item, outcome = result.claimed, result.outcome
    if metrics is not None:
        metrics.webhook_attempts.labels(outcome=recorded, result=outcome.result).inc()
    log.log(
        logging.INFO if recorded == "succeeded" else logging.WARNING,
        "webhook attempt",
        extra={
            "event": "webhook.attempt",
            "delivery_id": str(item.delivery_id),
            "event_id": str(item.event_id),
            "attempt": item.attempts + 1,
            "outcome": recorded,
            "status": outcome.status_code,
            "reason": outcome.error,
            "duration_ms": outcome.duration_ms,
        },
    )


def show_backlog(metrics: Metrics, backlog: Backlog, *, now: datetime) -> None:
    """The backlog gauges: pending, oldest pending age, endpoints failing."""
    metrics.webhook_pending.set(backlog.pending)
    age = 0.0
    if backlog.oldest_pending_at is not None:
        age = max(0.0, (now - backlog.oldest_pending_at).total_seconds())
    metrics.webhook_oldest_pending_age.set(age)
    metrics.webhook_endpoints_failing.set(backlog.endpoints_failing)
