"""The webhook dispatcher: delivers every event to every subscribed endpoint, at least
once, signed per the Standard Webhooks specification (service/events/signing.py).

It runs inside `accord serve` (unless ACCORD_WEBHOOK_DISPATCH_IN_SERVE=false: a task
of the app's lifespan on SQLite, `accord dispatch` as serve's child process on
PostgreSQL: dispatch_process.py) and as `accord dispatch`. Several may run
against one PostgreSQL (claims.py says why no delivery is sent twice in a normal
run); on SQLite only one process may dispatch.

A pass claims, in one short transaction, a run of due deliveries for each endpoint
not in flight (distinct objects, each its object's earliest pending event there:
claims.py) and starts a task per endpoint: it sends the run with no transaction
open, one request at a time (runs.py), then in ONE transaction
records the outcomes, releases what was not sent and, after a full run that all
succeeded, claims the endpoint's next run, and goes on until nothing is due for
it (a shorter run emptied the endpoint's backlog: what comes next waits for a
pass). At most ACCORD_WEBHOOK_DISPATCH_CONCURRENCY endpoints at once (a task goes on
only while a slot is free for others), and a pass never waits for a send: a slow
or dead endpoint holds one slot and never delays another organization's events.

A run starts at one delivery and doubles after a run that all succeeded, up to
claims.MAX_BATCH; a failed attempt ends the run (the rest released, due again at
once) and the next starts at one. No send starts that could outlast its lease
(elapsed time plus the total timeout within nine tenths of it): no other
dispatcher can claim a row while it may still be sent.

A pass runs when a commit made deliveries (this process's at once, another's by
LISTEN/NOTIFY on PostgreSQL: wake.py, listen.py), when an endpoint's task ends
with work perhaps left, and otherwise every ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS;
at most one per ACCORD_WEBHOOK_DISPATCH_COALESCE_SECONDS, so the commits of one
moment share a run.

The body is the event as the feed shows it; the headers carry the event's id as
`webhook-id` on every attempt, this attempt's time, and the signatures: `v1` with
the endpoint's secret (and the previous one during a rotation's overlap) and `v1a`
with the service's webhook key. Logs name event ids, delivery ids and outcomes,
never a URL, a body or a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
import uuid
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.clock import Clock
from service.crypto import Signer
from service.errors import ServiceUnavailableError
from service.events import claims, listen, runs, wake
from service.events.dispatch_config import DispatchConfig
from service.events.schedule import Uniform
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
        self._in_flight: dict[uuid.UUID, asyncio.Task[bool]] = {}  # by endpoint
        self._missed: set[uuid.UUID] = set()  # woken for while in flight
        self._starved = False  # a pass found no free slot
        self._claimed = 0  # deliveries claimed so far
        self._batch: dict[uuid.UUID, int] = {}  # the next run's size, by endpoint
        self._wake = asyncio.Event()
        self._stopping = False
        self._sender: runs.Sender | None = None
        self._listener: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog_read_at = float("-inf")

    async def __aenter__(self) -> Dispatcher:
        self._sender = runs.Sender(self._config, signer=self._signer, secrets_key=self._secrets_key)
        self._loop = asyncio.get_running_loop()
        wake.subscribe(self._woken)
        engine = self._factory.kw.get("bind")
        arguments = listen.connect_arguments(engine) if isinstance(engine, AsyncEngine) else None
        if arguments is not None:  # PostgreSQL: other processes' commits wake it too
            self._listener = asyncio.create_task(listen.listen(arguments, self._heard))
        return self

    def _heard(self, endpoints: frozenset[uuid.UUID] | None) -> None:
        """Another process committed deliveries (None: to any endpoint)."""
        if endpoints is None:
            self._wake.set()
        else:
            self._woken_for(endpoints)

    def _woken(self, endpoints: frozenset[uuid.UUID]) -> None:
        """After a commit that wrote deliveries (on whichever thread committed it)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                self._loop.call_soon_threadsafe(self._woken_for, endpoints)

    def _woken_for(self, endpoints: frozenset[uuid.UUID]) -> None:
        # An endpoint in flight is looked at again when its run ends (_done).
        if endpoints <= self._in_flight.keys():
            self._missed |= endpoints  # looked at by the run's next claim, or when it ends
        else:
            self._wake.set()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Requests cut short here leave their deliveries leased: sent again after the lease.
        wake.unsubscribe(self._woken)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        self.stop()
        for task in list(self._in_flight.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sender is not None:
            await self._sender.aclose()
            self._sender = None

    def stop(self) -> None:
        """Stop between two database operations, never inside one, and abandon the
        requests in flight (their deliveries stay leased and are sent again after the
        lease). A SQLite connection closed under a statement in flight can crash the
        process, so a dispatcher is stopped, not cancelled."""
        self._stopping = True
        self._wake.set()
        if self._sender is not None:
            self._sender.abandon()

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
        """Dispatch until stopped: a pass whenever a send finishes or the interval ends,
        at most one per `coalesce` seconds, so that the commits of one moment share a
        run (two transactions for the lot, not two each) while the first commit after
        a quiet spell is sent at once."""
        while not self._stopping:
            self._wake.clear()
            began = time.monotonic()
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
            rest = began + self._config.coalesce - time.monotonic()
            if rest > 0 and not self._stopping:
                await asyncio.sleep(rest)

    async def run_until_idle(self) -> int:
        """Dispatch until nothing is due and nothing is in flight; the number of
        deliveries claimed (by passes and by runs that went on)."""
        before = self._claimed
        while not self._stopping:
            claimed = await self.dispatch_pass()
            if self._in_flight:
                await asyncio.wait(list(self._in_flight.values()), return_when="FIRST_COMPLETED")
            elif not claimed:
                await self.refresh_backlog(force=True)
                break
        return self._claimed - before

    async def dispatch_pass(self) -> int:
        """Claim what is due for endpoints not in flight, within the free slots, and start
        sending each endpoint's run in its own task; the number of deliveries claimed."""
        free = self._config.concurrency - len(self._in_flight)
        if free <= 0 or self._stopping:
            self._starved = not self._stopping  # a run's end looks again
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
        self._claimed += len(claimed)
        by_endpoint: dict[uuid.UUID, list[claims.Claim]] = {}
        for item in claimed:
            by_endpoint.setdefault(item.endpoint_id, []).append(item)
        for endpoint_id, run in by_endpoint.items():
            task = asyncio.create_task(self._deliver(endpoint_id, run, started))
            self._in_flight[endpoint_id] = task
            task.add_done_callback(functools.partial(self._done, endpoint_id))
        return len(claimed)

    def _done(self, endpoint_id: uuid.UUID, task: asyncio.Task[bool]) -> None:
        self._in_flight.pop(endpoint_id, None)
        look_again = task.cancelled() or task.exception() is not None or task.result()
        if look_again or endpoint_id in self._missed or self._starved:
            self._missed.discard(endpoint_id)
            self._starved = False
            self._wake.set()

    async def _deliver(
        self, endpoint_id: uuid.UUID, run: list[claims.Claim], claimed_at: float
    ) -> bool:
        """The endpoint's runs until it has nothing due; whether a pass should look again."""
        try:
            return await self._send_runs(endpoint_id, run, claimed_at)
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
            return True

    def _may_start(self, claimed_at: float, index: int) -> bool:
        """Whether the run's send at `index` may start now: not stopping, and (after
        the first) it would end (total timeout) well within the lease."""
        if self._stopping:
            return False
        if not index:
            return True
        lease = self._config.lease.total_seconds()
        return time.monotonic() - claimed_at + self._config.timeout <= 0.9 * lease

    async def _send_runs(
        self, endpoint_id: uuid.UUID, run: list[claims.Claim], claimed_at: float
    ) -> bool:
        """Send a run, then record its outcomes, release what was not sent and (after
        a run that all succeeded, while another endpoint could still get a slot) claim
        the endpoint's next run, in one transaction; again until nothing more is due.
        False when the endpoint's last claim found nothing due: no pass is needed."""
        while True:
            assert self._sender is not None, "use the dispatcher as an async context manager"  # noqa: S101
            results, release = await runs.send_run(
                run,
                send=self._sender.send,
                may_start=functools.partial(self._may_start, claimed_at),
                clock=self._clock,
                uniform=self._uniform,
            )
            succeeded = len(results) == len(run) and all(r.outcome.ok for r in results)
            size = self._batch.get(endpoint_id, 1)
            if succeeded:
                self._batch[endpoint_id] = min(claims.MAX_BATCH, size * 2)
            else:
                self._batch.pop(endpoint_id, None)
            # A run shorter than its claim asked for emptied the endpoint's backlog: what
            # is committed next waits for the next pass, and shares its run.
            more = (
                succeeded
                and len(run) >= size
                and not self._stopping
                and len(self._in_flight) < self._config.concurrency
            )
            if not results and not release:
                return True
            claimed_at = time.monotonic()
            following = await self._record(endpoint_id, results, release, more=more)
            if following is None or not more:
                return True
            if not following:
                return False
            run = following

    async def _record(
        self,
        endpoint_id: uuid.UUID,
        results: list[claims.Result],
        release: list[claims.Claim],
        *,
        more: bool,
    ) -> list[claims.Claim] | None:
        """Record a run (and claim the endpoint's next run if `more`) in one
        transaction; the next run, or None if the transaction failed."""
        now = self._clock.now()
        following: list[claims.Claim] = []
        try:
            async with self._factory() as session:
                recorded = await claims.record_all(session, results, now=now, release=release)
                if more:
                    self._missed.discard(endpoint_id)  # this claim sees what was committed
                    following = await claims.claim(
                        session,
                        now=now,
                        lease=self._config.lease,
                        limit=1,
                        only=endpoint_id,
                        batch=lambda _: self._batch.get(endpoint_id, 1),
                    )
                await session.commit()
            self._claimed += len(following)
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
            return None
        for result, outcome_name in zip(results, recorded, strict=True):
            runs.log_attempt(self._metrics, result, outcome_name)
        return following

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
        runs.show_backlog(self._metrics, backlog, now=self._clock.now())


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
