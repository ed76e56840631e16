"""Telling both parties of a records request that it changed (the outbox:
service/events/outbox.py). Identifiers and codes only, never values."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from service.events.catalog import EventType
from service.events.outbox import emit
from service.records_requests.models import RecordsRequest


async def notify(
    session: AsyncSession, request: RecordsRequest, kind: EventType, at: datetime
) -> None:
    """Tell both parties (the outbox: service/events/outbox.py); codes only."""
    await emit(
        session,
        kind=kind,
        to=(request.requester_org_id, request.holder_org_id),
        object_type="records_request",
        object_id=request.id,
        data={
            "request_id": str(request.id),
            "status": request.status,
            "requester_org": str(request.requester_org_id),
            "holder_org": str(request.holder_org_id),
            "legal_basis": request.legal_basis,
        },
        at=at,
    )
