"""An endpoint's deliveries as its admin sees and steers them: the recent ones with
their attempts' status codes, a redelivery, and a test event.

A delivery is one event for one endpoint; its `webhook-id` is the event's id, so a
redelivery (the same row, pending again) carries the same id and a receiver that
already processed it can recognize it. A test writes a `webhook.test` event to the
organization's feed through the outbox and one delivery to the tested endpoint only,
whatever its event types.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal
from service.clock import Clock
from service.errors import ConflictError, NotFoundError
from service.events import wake
from service.events.catalog import EventType
from service.events.models import Event, WebhookAttempt, WebhookDelivery
from service.events.outbox import emit
from service.events.webhooks import audit_change, find_endpoint, lock_endpoint

# The attempts shown per delivery (the most recent).
HISTORY: Final = 20
# A delivery in any of these states may be sent again.
REDELIVERABLE: Final = frozenset({"pending", "succeeded", "failed"})


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    event_type: str
    history: list[WebhookAttempt]


async def _views(
    session: AsyncSession, rows: list[tuple[WebhookDelivery, str]]
) -> list[DeliveryView]:
    """The deliveries with their most recent attempts, oldest first (one query)."""
    ids = [delivery.id for delivery, _ in rows]
    history: dict[uuid.UUID, list[WebhookAttempt]] = {i: [] for i in ids}
    if ids:
        rank = (
            func.row_number()
            .over(partition_by=WebhookAttempt.delivery_id, order_by=WebhookAttempt.id.desc())
            .label("rank")
        )
        recent = (
            select(WebhookAttempt.id, rank).where(WebhookAttempt.delivery_id.in_(ids)).subquery()
        )
        stmt = (
            select(WebhookAttempt)
            .join(recent, recent.c.id == WebhookAttempt.id)
            .where(recent.c.rank <= HISTORY)
            .order_by(WebhookAttempt.id)
        )
        for attempt in (await session.scalars(stmt)).all():
            history[attempt.delivery_id].append(attempt)
    return [DeliveryView(d, event_type, history[d.id]) for d, event_type in rows]


async def recent(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    before: int | None,
    status: str | None,
    limit: int,
) -> tuple[list[DeliveryView], int | None]:
    """The endpoint's deliveries, newest event first, and the `before` to read on
    (None when there are no older ones)."""
    endpoint = await find_endpoint(session, principal, org_id, endpoint_id)
    stmt = (
        select(WebhookDelivery, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
    )
    if before is not None:
        stmt = stmt.where(WebhookDelivery.event_seq < before)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    stmt = stmt.order_by(
        WebhookDelivery.event_seq.desc(), WebhookDelivery.created_at.desc(), WebhookDelivery.id
    ).limit(limit + 1)
    rows = [(d, t) for d, t in (await session.execute(stmt)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return await _views(session, rows), (rows[-1][0].event_seq if more else None)


async def redeliver(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    clock: Clock,
) -> DeliveryView:
    """Make the delivery pending again, due now, its attempts counted afresh; the
    event (and so the `webhook-id`) is the same."""
    await find_endpoint(session, principal, org_id, endpoint_id)
    endpoint = await lock_endpoint(session, principal, org_id, endpoint_id)
    stmt = (
        select(WebhookDelivery, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint.id)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise NotFoundError()
    delivery, event_type = row
    if delivery.status not in REDELIVERABLE:
        raise ConflictError(f"A delivery that is {delivery.status} cannot be sent again")
    delivery.status = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = clock.now()
    delivery.delivered_at = None
    await session.flush()
    await wake.announce(session, [endpoint.id])
    details = {
        "endpoint_id": str(endpoint.id),
        "delivery_id": str(delivery.id),
        "event_id": str(delivery.event_id),
    }
    await audit_change(session, "webhook.redelivered", principal, details, clock)
    return (await _views(session, [(delivery, event_type)]))[0]


async def send_test(
    session: AsyncSession,
    *,
    principal: Principal,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    clock: Clock,
) -> DeliveryView:
    """A `webhook.test` event in the organization's feed and one pending delivery of
    it to this endpoint (a paused endpoint receives it when resumed)."""
    await find_endpoint(session, principal, org_id, endpoint_id)
    # The audit head (and with it the append queue) before the event counter row:
    # the lock order (service/audit/ordering.py). Holding the queue, the test numbers
    # its event at once (`number_now`), so that the reply carries its number.
    endpoint = await lock_endpoint(session, principal, org_id, endpoint_id)
    now = clock.now()
    details = {"endpoint_id": str(endpoint.id)}
    await audit_change(session, "webhook.tested", principal, details, clock)
    (event_id,) = await emit(
        session,
        kind=EventType.webhook_test,
        to=[endpoint.org_id],
        object_type="webhook_endpoint",
        object_id=endpoint.id,
        data={"endpoint_id": str(endpoint.id)},
        at=now,
        number_now=True,
    )
    # emit delivers to every endpoint subscribed to the type; a test goes to one only.
    await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id != endpoint.id
        )
    )
    event = await session.get_one(Event, event_id)
    delivery = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.event_id == event_id, WebhookDelivery.endpoint_id == endpoint.id
        )
    )
    if delivery is None:
        delivery_row = {
            "id": uuid.uuid4(),
            "event_id": event_id,
            "event_seq": event.seq,
            "endpoint_id": endpoint.id,
            "object_key": f"webhook_endpoint:{endpoint.id}",
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        await session.execute(insert(WebhookDelivery), [delivery_row])
        delivery = await session.get_one(WebhookDelivery, delivery_row["id"])
    return DeliveryView(delivery, event.type, [])
