"""The dispatcher's database side: claim due deliveries, record what became of them.

Claim (one short transaction, committed before anything is sent): the due
deliveries (pending, `next_attempt_at` reached, endpoint neither paused nor deleted)
that are each the earliest pending event of their object for their endpoint, at
most one per endpoint and none for an endpoint this process is already sending to.
Claiming a row pushes its `next_attempt_at` forward by the lease: no other
dispatcher sees it as due until the lease ends. On PostgreSQL the rows are selected
`FOR UPDATE SKIP LOCKED`, so dispatchers of several app nodes claiming at the same
moment take different rows and never wait on each other; one that selects a row
just after another committed its claim re-checks the row (READ COMMITTED re-evaluates
the WHERE clause on the newest version of a row it locks) and finds it no longer
due. SQLite has one dispatching process (BEGIN IMMEDIATE serializes it anyway).

The lease is longer than an attempt can last (settings.py checks it), so under
normal operation nobody else claims a row while its attempt runs: no double sends.
A dispatcher killed mid-attempt leaves its rows leased; when the lease ends they are
due again and another dispatcher (or the restarted one) sends them again, with the
same `webhook-id`: at least once, never lost.

Record (another short transaction): one `webhook_attempts` row per try; a success
ends the delivery and clears the endpoint's `failing_since`; a failure schedules the
next try, or after the last one ends the delivery as failed and marks the endpoint
failing (its admin sees it). A failure is recorded only while the claim still holds
(the row's `next_attempt_at` is still our lease), so a dispatcher that outlived its
lease cannot undo what another recorded since.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import ColumnElement, Select, and_, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from service.events.attempt import Outcome
from service.events.feed import event_read
from service.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint

Recorded = Literal["succeeded", "retry", "failed", "superseded"]


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


def _claimable(now: datetime, busy: Collection[uuid.UUID]) -> Select[tuple[uuid.UUID]]:
    """Due, on an active endpoint, the earliest pending event of its object there,
    and ranked per endpoint (so each claim takes at most one per endpoint)."""
    earlier = aliased(WebhookDelivery)
    blocked_by_earlier = exists().where(
        earlier.endpoint_id == WebhookDelivery.endpoint_id,
        earlier.object_key == WebhookDelivery.object_key,
        earlier.status == "pending",
        earlier.event_seq < WebhookDelivery.event_seq,
    )
    rank = (
        func.row_number()
        .over(
            partition_by=WebhookDelivery.endpoint_id,
            order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.event_seq),
        )
        .label("rank")
    )
    conditions: list[ColumnElement[bool]] = [
        _due(now),
        WebhookEndpoint.paused.is_(False),
        WebhookEndpoint.deleted_at.is_(None),
        ~blocked_by_earlier,
    ]
    if busy:
        conditions.append(WebhookDelivery.endpoint_id.not_in(list(busy)))
    ranked = (
        select(WebhookDelivery.id, rank)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(*conditions)
        .subquery()
    )
    return select(ranked.c.id).where(ranked.c.rank == 1)


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    busy: Collection[uuid.UUID] = (),
) -> list[Claim]:
    """Claim up to `limit` due deliveries; the caller commits at once."""
    if limit <= 0:
        return []
    locked = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.id.in_(_claimable(now, busy)), _due(now))
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.scalars(locked)).all())
    if not ids:
        return []
    lease_until = now + lease
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    rows = (
        await session.execute(
            select(WebhookDelivery, Event, WebhookEndpoint)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookDelivery.id.in_(ids))
        )
    ).all()
    claims = []
    for delivery, event, endpoint in rows:
        sealed = [endpoint.secret_sealed]
        if (
            endpoint.previous_secret_sealed is not None
            and endpoint.previous_until is not None
            and endpoint.previous_until > now
        ):
            sealed.append(endpoint.previous_secret_sealed)
        claims.append(
            Claim(
                delivery_id=delivery.id,
                event_id=event.id,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                attempts=delivery.attempts,
                lease_until=lease_until,
                body=event_read(event).model_dump_json().encode(),
                secrets_sealed=tuple(sealed),
            )
        )
    return claims


async def record(
    session: AsyncSession,
    claimed: Claim,
    *,
    outcome: Outcome,
    attempted_at: datetime,
    now: datetime,
    retry_at: datetime | None,
) -> Recorded:
    """Record one attempt's outcome (`retry_at`: when to try again after a failure,
    None when it was the last); the caller commits."""
    await session.execute(
        insert(WebhookAttempt).values(
            delivery_id=claimed.delivery_id,
            at=attempted_at,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    this = WebhookDelivery.id == claimed.delivery_id
    pending = WebhookDelivery.status == "pending"
    common = {
        "attempts": WebhookDelivery.attempts + 1,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    if outcome.ok:
        # Delivered is delivered, even by a dispatcher that outlived its lease.
        await session.execute(
            update(WebhookDelivery)
            .where(this, pending)
            .values(status="succeeded", delivered_at=now, **common)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == claimed.endpoint_id,
                WebhookEndpoint.failing_since.is_not(None),
            )
            .values(failing_since=None)
            .execution_options(synchronize_session=False)
        )
        return "succeeded"
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
