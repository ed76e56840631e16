"""The webhook dispatcher: delivers every event to every subscribed endpoint, at least
once, signed per the Standard Webhooks specification (service/events/signing.py).

It runs inside `accord serve` (a background task of the app's lifespan, unless
ACCORD_WEBHOOK_DISPATCH_IN_SERVE=false) and as `accord dispatch` for deployments
that run it apart. Several may run against one PostgreSQL (service/events/claims.py
says why no delivery is sent twice in a normal run); on SQLite only one process may
dispatch.

Each pass claims due deliveries in a short transaction and commits, sends them with
no transaction open, and records each outcome in another short transaction. Every
delivery runs in its own task: at most one request in flight per endpoint in this
process and at most ACCORD_WEBHOOK_DISPATCH_CONCURRENCY in all, and a pass never
waits for a send to finish. So a slow or dead endpoint holds one slot for at most
the total timeout, and never delays another organization's deliveries.

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
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.clock import Clock
from service.crypto import Signer, open_secret
from service.errors import ServiceUnavailableError
from service.events import attempt, claims, signing
from service.events.schedule import Uniform, retry_delay
from service.events.ssrf import Network, parse_networks
from service.settings import Environment, Settings
from service.web.observability import Metrics

log = logging.getLogger("accord.events.dispatch")

# The database may be briefly unreachable; the dispatcher waits for the next pass.
_DATABASE_ERRORS = (SQLAlchemyError, ServiceUnavailableError, OSError)
# How often at most the backlog gauges are read from the database.
_BACKLOG_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class DispatchConfig:
    allowed: tuple[Network, ...]
    require_https: bool
    concurrency: int
    connect_timeout: float
    timeout: float
    lease: timedelta
    interval: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(
            allowed=parse_networks(settings.webhook_allowed_networks),
            require_https=settings.environment is Environment.production,
            concurrency=settings.webhook_dispatch_concurrency,
            connect_timeout=settings.webhook_connect_timeout_seconds,
            timeout=settings.webhook_timeout_seconds,
            lease=timedelta(seconds=settings.webhook_lease_seconds),
            interval=settings.webhook_dispatch_interval_seconds,
        )


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
        self._sends: dict[uuid.UUID, asyncio.Task[attempt.Outcome]] = {}  # by delivery
        self._wake = asyncio.Event()
        self._stopping = False
        self._client: httpx.AsyncClient | None = None
        self._backlog_read_at = float("-inf")

    async def __aenter__(self) -> Dispatcher:
        self._client = attempt.new_client(
            self._config.allowed,
            connect_timeout=self._config.connect_timeout,
            connections=self._config.concurrency,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Requests cut short here leave their deliveries leased: sent again after the lease.
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
        sending each in its own task; the number started."""
        free = self._config.concurrency - len(self._in_flight)
        if free <= 0 or self._stopping:
            return 0
        try:
            async with self._factory() as session:
                claimed = await claims.claim(
                    session,
                    now=self._clock.now(),
                    lease=self._config.lease,
                    limit=free,
                    busy=set(self._in_flight),
                )
                await session.commit()
        except _DATABASE_ERRORS as error:
            log.warning(
                "claiming webhook deliveries failed; retried at the next pass",
                extra={"event": "webhook.claim_failed", "error_type": type(error).__name__},
            )
            return 0
        for item in claimed:
            task = asyncio.create_task(self._deliver(item))
            self._in_flight[item.endpoint_id] = task
            task.add_done_callback(functools.partial(self._done, item.endpoint_id))
        return len(claimed)

    def _done(self, endpoint_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(endpoint_id, None)
        self._wake.set()

    def _headers(self, item: claims.Claim, timestamp: int) -> dict[str, str]:
        secrets = [open_secret(self._secrets_key, sealed) for sealed in item.secrets_sealed]
        return signing.headers(
            str(item.event_id), timestamp, item.body, secrets=secrets, signer=self._signer
        )

    async def _deliver(self, item: claims.Claim) -> None:
        try:
            await self._attempt(item)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - one delivery's fault must not stop the others
            log.error(
                "webhook delivery failed unexpectedly; retried after its lease",
                extra={
                    "event": "webhook.delivery_error",
                    "delivery_id": str(item.delivery_id),
                    "event_id": str(item.event_id),
                    "error_type": type(error).__name__,
                },
            )

    async def _attempt(self, item: claims.Claim) -> None:
        assert self._client is not None, "use the dispatcher as an async context manager"  # noqa: S101
        attempted_at = self._clock.now()
        try:
            headers = self._headers(item, int(attempted_at.timestamp()))
        except Exception as error:  # noqa: BLE001 - a secret sealed under another key
            # Nothing is sent unsigned: a failed attempt, on the schedule, so the
            # endpoint ends up failing where its admin sees it.
            log.error(
                "a webhook secret could not be opened (was the key directory replaced?)",
                extra={"event": "webhook.secret_unopenable", "error_type": type(error).__name__},
            )
            outcome = attempt.Outcome(None, "secret", 0)
        else:
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
                outcome = await send
            except asyncio.CancelledError:
                if send.cancelled() and self._stopping:
                    return  # abandoned by stop(): still leased, sent again after the lease
                raise
            finally:
                self._sends.pop(item.delivery_id, None)
        now = self._clock.now()
        delay = None if outcome.ok else retry_delay(item.attempts + 1, self._uniform)
        try:
            async with self._factory() as session:
                recorded = await claims.record(
                    session,
                    item,
                    outcome=outcome,
                    attempted_at=attempted_at,
                    now=now,
                    retry_at=now + delay if delay is not None else None,
                )
                await session.commit()
        except _DATABASE_ERRORS as error:
            log.warning(
                "recording a webhook attempt failed; sent again after its lease",
                extra={
                    "event": "webhook.record_failed",
                    "delivery_id": str(item.delivery_id),
                    "event_id": str(item.event_id),
                    "error_type": type(error).__name__,
                },
            )
            return
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
