"""How a records-request answer ends without anyone acting, as for referrals
(service/referrals/expiry.py); both run in the retention sweep (service/retention.py).

- Consent expired: the fields of an answer given under a grant whose latest
  version has expired and not yet released are destroyed (a delivery would withhold
  them). One `request.shredded` entry per answer destroyed.
- Abandoned: a released answer never delivered within the abandonment time moves
  to `expired`, every ciphertext and sealed key it holds is destroyed, both parties
  are told (a `records_request.expired` event) and one `request.expired` entry is
  written. An expired answer cannot be delivered (only `released` ones are).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.clock import Clock
from service.consents.ending import expired_versions
from service.events.catalog import EventType
from service.records_requests.announce import notify
from service.records_requests.models import RecordsRequest, RequestStatus
from service.records_requests.shred import destroy


async def _audit(
    session: AsyncSession,
    action: str,
    request: RecordsRequest,
    reason: str,
    count: int,
    clock: Clock,
) -> None:
    await stage(
        session,
        AuditEvent(
            action,
            None,
            actor_label="sweep",
            subject_ref=str(request.subject_id) if request.subject_id else None,
            counterpart_org_id=request.holder_org_id,
            details={"request_id": str(request.id), "reason": reason, "fields": count},
        ),
        clock=clock,
    )


async def shred_for_expired_grants(session: AsyncSession, *, clock: Clock) -> list[uuid.UUID]:
    """Destroy every unreleased answer field under an expired grant; audited once
    per answer whose fields this call destroyed."""
    under = select(RecordsRequest).where(
        RecordsRequest.consent_id.in_(expired_versions(clock.now()))
    )
    touched: list[uuid.UUID] = []
    for request in (await session.scalars(under)).all():
        count = await destroy(session, [request.id], unreleased=True)
        if count:
            await _audit(session, "request.shredded", request, "consent_expired", count, clock)
            touched.append(request.id)
    return touched


async def abandon(session: AsyncSession, *, after: timedelta, clock: Clock) -> list[uuid.UUID]:
    """Move every answer released more than `after` ago and never delivered to
    `expired`, destroying what it holds. Idempotent."""
    now = clock.now()
    due = select(RecordsRequest).where(
        RecordsRequest.status == RequestStatus.released.value,
        RecordsRequest.delivered_at.is_(None),
        RecordsRequest.responded_at <= now - after,
    )
    ended: list[uuid.UUID] = []
    for request in (await session.scalars(due)).all():
        request.status = RequestStatus.expired.value
        request.updated_at = now
        count = await destroy(session, [request.id], unreleased=False)
        await _audit(session, "request.expired", request, "abandoned", count, clock)
        await notify(session, request, EventType.records_request_expired, now)
        ended.append(request.id)
    return ended
