"""An organization's event feed (GET /v1/events?after=): its own events in order,
for tools that cannot take webhooks. Reading changes nothing, so it is idempotent;
the cursor is the event's number, and an organization's numbers follow the commit
order (service/events/outbox.py), so `after=n` never skips an event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.events.models import Event
from service.events.schemas import EventRead


def event_read(event: Event) -> EventRead:
    return EventRead(
        id=event.id,
        seq=event.seq,
        type=event.type,
        timestamp=event.at,
        object_type=event.object_type,
        object_id=event.object_id,
        data=event.data,
    )


async def page(
    session: AsyncSession, *, org_id: uuid.UUID, after: int, limit: int
) -> Sequence[Event]:
    stmt = (
        select(Event)
        .where(Event.org_id == org_id, Event.seq > after)
        .order_by(Event.seq)
        .limit(limit)
    )
    return (await session.scalars(stmt)).all()
