"""The dispatcher's database side: claim due deliveries, record what became of them.

Claim (one short transaction, committed before anything is sent): the due
deliveries (pending, `next_attempt_at` reached, endpoint neither paused nor deleted)
that are each the earliest pending event of their object for their endpoint, a run
of at most `batch(endpoint)` of them per endpoint (distinct objects, so no two of
one object are ever claimed together), for at most `limit` endpoints and none this
process is already sending to. Claiming a row pushes its `next_attempt_at` forward
by the lease: no other dispatcher sees it as due until the lease ends. On PostgreSQL
the rows are selected `FOR UPDATE SKIP LOCKED`, so dispatchers of several app nodes
claiming at the same moment take different rows and never wait on each other; one
that selects a row just after another committed its claim re-checks the row (READ
COMMITTED re-evaluates the WHERE clause on the newest version of a row it locks)
and finds it no longer due. SQLite has one dispatching process (BEGIN IMMEDIATE
serializes it anyway).

The lease is longer than an attempt can last (settings.py checks it), so under
normal operation nobody else claims a row while its attempt runs: no double sends.
A dispatcher killed mid-attempt leaves its rows leased; when the lease ends they are
due again and another dispatcher (or the restarted one) sends them again, with the
same `webhook-id`: at least once, never lost.

Record (another short transaction, one for a whole run): one `webhook_attempts` row
per try; a success
ends the delivery and clears the endpoint's `failing_since`; a failure schedules the
next try, or after the last one ends the delivery as failed and marks the endpoint
failing (its admin sees it). A failure is recorded only while the claim still holds
(the row's `next_attempt_at` is still our lease), so a dispatcher that outlived its
lease cannot undo what another recorded since. A claimed row the dispatcher chose
not to send (the run ended early) is released: due again at once, if still ours.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import ColumnElement, Select, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.events.attempt import Outcome
from service.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from service.events.schemas import EventRead

Recorded = Literal["succeeded", "retry", "failed", "superseded"]

# The most deliveries claimed for one endpoint in one transaction.
MAX_BATCH: Final = 32


@dataclass(frozen=True)
class Claim:
    delivery_id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    attempts: int  # before this one
    lease_until: datetime
    body: bytes  # the event as the feed shows it
    secrets_sealed: tuple[bytes, ...]  # the current secret, and the previous one in its overlap


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)


def _claimable(
    now: datetime, busy: Collection[uuid.UUID], most: int, only: uuid.UUID | None = None
) -> Select[uuid.UUID, uuid.UUID, int]:
    """Due, on an active endpoint, the earliest pending event of its object there,
    and the first `most` such per endpoint with their rank there (1, 2, ...).

    Two window functions, each one sort over the pending rows, whatever the planner
    believes about them: a queue table's statistics say "nothing pending" most of the
    time, and a self-join (NOT EXISTS an earlier pending event of the object) was
    then planned as a nested loop, quadratic in the backlog (300 pending deliveries
    to one endpoint cost 170 ms a claim on PostgreSQL; docs/benchmarks/notifications.md)."""
    conditions: list[ColumnElement[bool]] = [WebhookDelivery.status == "pending"]
    if busy:
        conditions.append(WebhookDelivery.endpoint_id.not_in(list(busy)))
    if only is not None:
        conditions.append(WebhookDelivery.endpoint_id == only)
    in_object = func.row_number().over(
        partition_by=(WebhookDelivery.endpoint_id, WebhookDelivery.object_key),
        order_by=WebhookDelivery.event_seq,
    )
    pending = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.endpoint_id,
            WebhookDelivery.next_attempt_at,
            WebhookDelivery.event_seq,
            in_object.label("in_object"),
        )
        .where(*conditions)
        .subquery("pending")
    )
    in_endpoint = func.row_number().over(
        partition_by=pending.c.endpoint_id,
        order_by=(pending.c.next_attempt_at, pending.c.event_seq),
    )
    heads = (
        select(
            pending.c.id,
            pending.c.endpoint_id,
            pending.c.next_attempt_at,
            pending.c.event_seq,
            in_endpoint.label("in_endpoint"),
        )
        .select_from(pending)
        .join(WebhookEndpoint, WebhookEndpoint.id == pending.c.endpoint_id)
        .where(
            pending.c.in_object == 1,
            pending.c.next_attempt_at <= now,
            WebhookEndpoint.paused.is_(False),
            WebhookEndpoint.deleted_at.is_(None),
        )
        .subquery("heads")
    )
    return (
        select(heads.c.id, heads.c.endpoint_id, heads.c.in_endpoint)
        .where(heads.c.in_endpoint <= most)
        .order_by(heads.c.in_endpoint, heads.c.next_attempt_at, heads.c.event_seq)
    )


def _one(_endpoint: uuid.UUID) -> int:
    return 1


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    busy: Collection[uuid.UUID] = (),
    batch: Callable[[uuid.UUID], int] = _one,
    only: uuid.UUID | None = None,
) -> list[Claim]:
    """Claim due deliveries for up to `limit` endpoints (only `only`, if given), up to
    `batch(endpoint)` for each (at most MAX_BATCH); the caller commits at once. Each
    endpoint's claims come in the order they are to be sent (due first, then event
    order)."""
    if limit <= 0:
        return []
    # The candidates first, then those of them still due locked by primary key:
    # `id IN (subquery)` in one statement was planned as a semi-join that ran the
    # subquery again for every due row. The endpoints whose first candidate is due
    # earliest are served first (rank 1 rows come first, in due order).
    candidates = (await session.execute(_claimable(now, busy, MAX_BATCH, only))).all()
    chosen: dict[uuid.UUID, int] = {}
    order: dict[uuid.UUID, int] = {}
    for delivery_id, endpoint_id, rank in candidates:
        if rank == 1 and len(chosen) < limit:
            chosen[endpoint_id] = min(MAX_BATCH, max(1, batch(endpoint_id)))
        if endpoint_id in chosen and rank <= chosen[endpoint_id]:
            order[delivery_id] = len(order)
    if not order:
        return []
    # Lock (PostgreSQL: skipping rows another dispatcher holds), re-check and lease
    # the chosen rows in one statement, then read what their requests need as plain
    # columns (no ORM objects: this runs for every run of every endpoint).
    lease_until = now + lease
    locked = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.id.in_(list(order)), _due(now))
        .with_for_update(skip_locked=True)
    )
    leased = (
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(locked))
        .values(next_attempt_at=lease_until)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = list((await session.scalars(leased)).all())
    if not ids:
        return []
    rows = (
        await session.execute(
            select(
                WebhookDelivery.id,
                WebhookDelivery.attempts,
                Event.id,
                Event.seq,
                Event.type,
                Event.at,
                Event.object_type,
                Event.object_id,
                Event.data,
                WebhookEndpoint.id,
                WebhookEndpoint.url,
                WebhookEndpoint.secret_sealed,
                WebhookEndpoint.previous_secret_sealed,
                WebhookEndpoint.previous_until,
            )
            .join(Event, Event.id == WebhookDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id.in_(ids))
        )
    ).all()
    claims = []
    for row in rows:
        (delivery_id, attempts, event_id, seq, kind, at, object_type, object_id, data) = row[:9]
        endpoint_id, url, secret, previous, previous_until = row[9:]
        sealed = [secret]
        if previous is not None and previous_until is not None and previous_until > now:
            sealed.append(previous)
        # The event exactly as the feed shows it (service/events/feed.py, event_read).
        body = EventRead(
            id=event_id,
            seq=seq,
            type=kind,
            timestamp=at,
            object_type=object_type,
            object_id=object_id,
            data=data,
        )
        claims.append(
            Claim(
                delivery_id=delivery_id,
                event_id=event_id,
                endpoint_id=endpoint_id,
                url=url,
                attempts=attempts,
                lease_until=lease_until,
                body=body.model_dump_json().encode(),
                secrets_sealed=tuple(sealed),
            )
        )
    claims.sort(key=lambda c: order[c.delivery_id])
    return claims


@dataclass(frozen=True)
class Result:
    claimed: Claim
    outcome: Outcome
    attempted_at: datetime
    retry_at: datetime | None  # when to try again after a failure; None after the last


async def record_all(
    session: AsyncSession,
    results: Sequence[Result],
    *,
    now: datetime,
    release: Sequence[Claim] = (),
) -> list[Recorded]:
    """Record a run's outcomes, and release the claims not sent; the caller commits."""
    if results:
        await session.execute(
            insert(WebhookAttempt),
            [
                {
                    "delivery_id": r.claimed.delivery_id,
                    "at": r.attempted_at,
                    "status_code": r.outcome.status_code,
                    "error": r.outcome.error,
                    "duration_ms": r.outcome.duration_ms,
                }
                for r in results
            ],
        )
    # Successes in one statement per status code (nearly always one: 200).
    by_code: dict[int | None, list[uuid.UUID]] = {}
    for r in results:
        if r.outcome.ok:
            by_code.setdefault(r.outcome.status_code, []).append(r.claimed.delivery_id)
    for code, ids in by_code.items():
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids), WebhookDelivery.status == "pending")
            .values(
                status="succeeded",
                delivered_at=now,
                attempts=WebhookDelivery.attempts + 1,
                last_status_code=code,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
    succeeded = {r.claimed.endpoint_id for r in results if r.outcome.ok}
    if succeeded:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(succeeded), WebhookEndpoint.failing_since.is_not(None))
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
    recorded: list[Recorded] = []
    for r in results:
        if r.outcome.ok:
            recorded.append("succeeded")
        else:
            recorded.append(await _record_failure(session, r, now=now))
    for lease_until in {c.lease_until for c in release}:
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id.in_(
                    [c.delivery_id for c in release if c.lease_until == lease_until]
                ),
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at == lease_until,
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    return recorded


async def _record_failure(session: AsyncSession, result: Result, *, now: datetime) -> Recorded:
    claimed, outcome, retry_at = result.claimed, result.outcome, result.retry_at
    this = WebhookDelivery.id == claimed.delivery_id
    pending = WebhookDelivery.status == "pending"
    common = {
        "attempts": WebhookDelivery.attempts + 1,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    ours = WebhookDelivery.next_attempt_at == claimed.lease_until
    if retry_at is not None:
        changed = await session.execute(
            update(WebhookDelivery)
            .where(this, pending, ours)
            .values(next_attempt_at=retry_at, **common)
            .execution_options(synchronize_session=False)
        )
        return "retry" if changed.rowcount else "superseded"  # type: ignore[attr-defined]
    changed = await session.execute(
        update(WebhookDelivery)
        .where(this, pending, ours)
        .values(status="failed", **common)
        .execution_options(synchronize_session=False)
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return "superseded"
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == claimed.endpoint_id, WebhookEndpoint.failing_since.is_(None))
        .values(failing_since=now)
        .execution_options(synchronize_session=False)
    )
    return "failed"


@dataclass(frozen=True)
class Backlog:
    pending: int  # deliveries pending to active endpoints
    oldest_pending_at: datetime | None  # when the oldest of them was created
    endpoints_failing: int


async def backlog(session: AsyncSession) -> Backlog:
    active = and_(WebhookEndpoint.paused.is_(False), WebhookEndpoint.deleted_at.is_(None))
    pending, oldest = (
        await session.execute(
            select(func.count(), func.min(WebhookDelivery.created_at))
            .select_from(WebhookDelivery)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.status == "pending", active)
        )
    ).one()
    failing = await session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.failing_since.is_not(None), WebhookEndpoint.deleted_at.is_(None))
    )
    return Backlog(int(pending), oldest, int(failing or 0))
