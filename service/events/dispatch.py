"""The webhook dispatcher: delivers every event to every subscribed endpoint, at least
once, signed per the Standard Webhooks specification (service/events/signing.py).

It runs inside `accord serve` (a background task of the app's lifespan, unless
ACCORD_WEBHOOK_DISPATCH_IN_SERVE=false) and as `accord dispatch` for deployments
that run it apart. Several may run against one PostgreSQL (service/events/claims.py
says why no delivery is sent twice in a normal run); on SQLite only one process may
dispatch.

Each pass claims, in one short transaction, a run of due deliveries per endpoint
(distinct objects, each its object's earliest pending event there; service/events/
claims.py), sends the run with no transaction open, one request at a time, and
records all its outcomes in another short transaction. Every endpoint's run is a
task of its own: at most one request in flight per endpoint in this process and at
most ACCORD_WEBHOOK_DISPATCH_CONCURRENCY endpoints at once, and a pass never waits
for a send to finish. So a slow or dead endpoint holds one slot, and never delays
another organization's deliveries.

A run starts at one delivery and doubles after a run that all succeeded, up to
claims.MAX_BATCH; a failed attempt ends the run (the rest are released, due again
at once) and the next starts at one again. So a healthy endpoint under load gets
its backlog in a few transactions, while a failing one holds one row at a time, as
before. A run never starts a send that could outlast its lease (elapsed time plus
the total timeout within nine tenths of the lease): no other dispatcher can claim
a row while it may still be sent.

A pass runs when a send finishes, when a transaction of this process that wrote
deliveries commits (service/events/wake.py), and otherwise every
ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS: the poll that finds work committed by
another node, or by the service when the dispatcher runs apart.

The body is the event exactly as the feed shows it; the headers carry the event's id
as `webhook-id` on every attempt (a receiver drops duplicates by it), this attempt's
time, and the signatures: `v1` with the endpoint's secret (and the previous one
during a rotation's overlap) and `v1a` with the service's webhook key. Logs name
event ids, delivery ids and outcomes, never a URL, a body or a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
import uuid
from datetime import datetime
from types import TracebackType

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.clock import Clock
from service.crypto import Signer, open_secret
from service.errors import ServiceUnavailableError
from service.events import attempt, claims, signing, wake
from service.events.dispatch_config import DispatchConfig
from service.events.schedule import Uniform, retry_delay
from service.web.observability import Metrics

__all__ = ["DispatchConfig", "Dispatcher", "dispatch_loop"]

log = logging.getLogger("accord.events.dispatch")

# The database may be briefly unreachable; the dispatcher waits for the next pass.
_DATABASE_ERRORS = (SQLAlchemyError, ServiceUnavailableError, OSError)
# How often at most the backlog gauges are read from the database.
_BACKLOG_EVERY_SECONDS = 5.0


class Dispatcher:
    """Use as `async with Dispatcher(...) as d: await d.run()` (or `run_until_idle()`)."""

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        *,
        signer: Signer,
        secrets_key: bytes,
        config: DispatchConfig,
        clock: Clock,
        metrics: Metrics | None = None,
        uniform: Uniform | None = None,
    ) -> None:
        self._factory = factory
        self._signer = signer
        self._secrets_key = secrets_key
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self._uniform = uniform or secrets.SystemRandom().uniform
        self._in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}  # by endpoint
        self._batch: dict[uuid.UUID, int] = {}  # the next run's size, by endpoint
        self._sends: dict[uuid.UUID, asyncio.Task[attempt.Outcome]] = {}  # by delivery
        self._wake = asyncio.Event()
        self._stopping = False
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog_read_at = float("-inf")

    async def __aenter__(self) -> Dispatcher:
        self._client = attempt.new_client(
            self._config.allowed,
            connect_timeout=self._config.connect_timeout,
            connections=self._config.concurrency,
        )
        self._loop = asyncio.get_running_loop()
        wake.subscribe(self._woken)
        return self

    def _woken(self, endpoints: frozenset[uuid.UUID]) -> None:
        """After a commit that wrote deliveries (on whichever thread committed it)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                self._loop.call_soon_threadsafe(self._woken_for, endpoints)

    def _woken_for(self, endpoints: frozenset[uuid.UUID]) -> None:
        # An endpoint in flight is looked at again when its run ends (_done).
        if not endpoints <= self._in_flight.keys():
            self._wake.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Requests cut short here leave their deliveries leased: sent again after the lease.
        wake.unsubscribe(self._woken)
        self.stop()
        for task in list(self._in_flight.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def stop(self) -> None:
        """Stop between two database operations, never inside one, and abandon the
        requests in flight (their deliveries stay leased and are sent again after the
        lease). A SQLite connection closed under a statement in flight can crash the
        process, so a dispatcher is stopped, not cancelled."""
        self._stopping = True
        self._wake.set()
        for send in self._sends.values():
            send.cancel()

    async def serve(self) -> None:
        """`run()` until `stop()`; cancelling the caller stops it the same way."""
        runner = asyncio.create_task(self.run())
        try:
            await asyncio.shield(runner)
        except asyncio.CancelledError:
            self.stop()
            await runner
            raise

    async def run(self) -> None:
        """Dispatch until stopped: a pass whenever a send finishes or the interval ends."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self.dispatch_pass()
                await self.refresh_backlog(force=False)
            except Exception as error:  # noqa: BLE001 - the dispatcher outlives any one fault
                log.error(
                    "a dispatch pass failed; retried after the interval",
                    extra={"event": "webhook.pass_failed", "error_type": type(error).__name__},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._config.interval)

    async def run_until_idle(self) -> int:
        """Dispatch until nothing is due and nothing is in flight; the number of attempts."""
        started = 0
        while not self._stopping:
            claimed = await self.dispatch_pass()
            started += claimed
            if self._in_flight:
                await asyncio.wait(list(self._in_flight.values()), return_when="FIRST_COMPLETED")
            elif not claimed:
                await self.refresh_backlog(force=True)
                return started
        return started

    async def dispatch_pass(self) -> int:
        """Claim what is due for endpoints not in flight, within the free slots, and start
        sending each endpoint's run in its own task; the number of deliveries claimed."""
        free = self._config.concurrency - len(self._in_flight)
        if free <= 0 or self._stopping:
            return 0
        started = time.monotonic()
        try:
            async with self._factory() as session:
                claimed = await claims.claim(
                    session,
                    now=self._clock.now(),
                    lease=self._config.lease,
                    limit=free,
                    busy=set(self._in_flight),
                    batch=lambda endpoint_id: self._batch.get(endpoint_id, 1),
                )
                await session.commit()
        except _DATABASE_ERRORS as error:
            log.warning(
                "claiming webhook deliveries failed; retried at the next pass",
                extra={"event": "webhook.claim_failed", "error_type": type(error).__name__},
            )
            return 0
        runs: dict[uuid.UUID, list[claims.Claim]] = {}
        for item in claimed:
            runs.setdefault(item.endpoint_id, []).append(item)
        for endpoint_id, run in runs.items():
            task = asyncio.create_task(self._deliver(endpoint_id, run, started))
            self._in_flight[endpoint_id] = task
            task.add_done_callback(functools.partial(self._done, endpoint_id))
        return len(claimed)

    def _done(self, endpoint_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(endpoint_id, None)
        self._wake.set()

    def _headers(self, item: claims.Claim, timestamp: int) -> dict[str, str]:
        secrets = [open_secret(self._secrets_key, sealed) for sealed in item.secrets_sealed]
        return signing.headers(
            str(item.event_id), timestamp, item.body, secrets=secrets, signer=self._signer
        )

    async def _deliver(
        self, endpoint_id: uuid.UUID, run: list[claims.Claim], claimed_at: float
    ) -> None:
        try:
            await self._send_run(endpoint_id, run, claimed_at)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - one run's fault must not stop the others
            self._batch.pop(endpoint_id, None)
            log.error(
                "webhook delivery failed unexpectedly; retried after its lease",
                extra={
                    "event": "webhook.delivery_error",
                    "delivery_id": str(run[0].delivery_id),
                    "event_id": str(run[0].event_id),
                    "run": len(run),
                    "error_type": type(error).__name__,
                },
            )

    def _may_start(self, claimed_at: float) -> bool:
        """Whether a send started now ends (total timeout) well within the lease."""
        lease = self._config.lease.total_seconds()
        return time.monotonic() - claimed_at + self._config.timeout <= 0.9 * lease

    async def _send_run(
        self, endpoint_id: uuid.UUID, run: list[claims.Claim], claimed_at: float
    ) -> None:
        """Send the run in order, one at a time, until a failure or the lease's end;
        then record the outcomes and release what was not sent, in one transaction."""
        results: list[claims.Result] = []
        release: list[claims.Claim] = []
        for index, item in enumerate(run):
            if self._stopping or (index and not self._may_start(claimed_at)):
                release = run[index:]
                break
            attempted_at = self._clock.now()
            outcome = await self._send(item, attempted_at)
            if outcome is None:  # abandoned by stop(): still leased, sent again after it
                release = run[index + 1 :]
                break
            now = self._clock.now()
            delay = None if outcome.ok else retry_delay(item.attempts + 1, self._uniform)
            retry_at = now + delay if delay is not None else None
            results.append(claims.Result(item, outcome, attempted_at, retry_at))
            if not outcome.ok:
                release = run[index + 1 :]
                break
        if all(r.outcome.ok for r in results) and len(results) == len(run):
            size = self._batch.get(endpoint_id, 1)
            self._batch[endpoint_id] = min(claims.MAX_BATCH, size * 2)
        else:
            self._batch.pop(endpoint_id, None)
        if not results and not release:
            return
        try:
            async with self._factory() as session:
                recorded = await claims.record_all(
                    session, results, now=self._clock.now(), release=release
                )
                await session.commit()
        except _DATABASE_ERRORS as error:
            self._batch.pop(endpoint_id, None)
            log.warning(
                "recording webhook attempts failed; sent again after their lease",
                extra={
                    "event": "webhook.record_failed",
                    "delivery_ids": [str(r.claimed.delivery_id) for r in results],
                    "event_ids": [str(r.claimed.event_id) for r in results],
                    "error_type": type(error).__name__,
                },
            )
            return
        for result, outcome_name in zip(results, recorded, strict=True):
            self._log(result, outcome_name)

    async def _send(self, item: claims.Claim, attempted_at: datetime) -> attempt.Outcome | None:
        """One attempt; None when stop() abandoned it."""
        assert self._client is not None, "use the dispatcher as an async context manager"  # noqa: S101
        try:
            headers = self._headers(item, int(attempted_at.timestamp()))
        except Exception as error:  # noqa: BLE001 - a secret sealed under another key
            # Nothing is sent unsigned: a failed attempt, on the schedule, so the
            # endpoint ends up failing where its admin sees it.
            log.error(
                "a webhook secret could not be opened (was the key directory replaced?)",
                extra={"event": "webhook.secret_unopenable", "error_type": type(error).__name__},
            )
            return attempt.Outcome(None, "secret", 0)
        send = asyncio.create_task(
            attempt.post(
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
            if send.cancelled() and self._stopping:
                return None
            raise
        finally:
            self._sends.pop(item.delivery_id, None)

    def _log(self, result: claims.Result, recorded: claims.Recorded) -> None:
        item, outcome = result.claimed, result.outcome
        if self._metrics is not None:
            self._metrics.webhook_attempts.labels(outcome=recorded, result=outcome.result).inc()
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

    async def refresh_backlog(self, *, force: bool) -> None:
        """Read the backlog gauges (pending, oldest pending age, endpoints failing)."""
        if self._metrics is None:
            return
        if not force and time.monotonic() - self._backlog_read_at < _BACKLOG_EVERY_SECONDS:
            return
        self._backlog_read_at = time.monotonic()
        try:
            async with self._factory() as session:
                backlog = await claims.backlog(session)
                await session.commit()
        except _DATABASE_ERRORS:
            return
        self._metrics.webhook_pending.set(backlog.pending)
        age = 0.0
        if backlog.oldest_pending_at is not None:
            age = max(0.0, (self._clock.now() - backlog.oldest_pending_at).total_seconds())
        self._metrics.webhook_oldest_pending_age.set(age)
        self._metrics.webhook_endpoints_failing.set(backlog.endpoints_failing)


async def dispatch_loop(
    factory: async_sessionmaker[AsyncSession],
    *,
    signer: Signer,
    secrets_key: bytes,
    config: DispatchConfig,
    clock: Clock,
    metrics: Metrics | None,
) -> None:
    """The dispatcher of a running service (`accord dispatch` runs it apart)."""
    async with Dispatcher(
        factory,
        signer=signer,
        secrets_key=secrets_key,
        config=config,
        clock=clock,
        metrics=metrics,
    ) as dispatcher:
        await dispatcher.serve()
