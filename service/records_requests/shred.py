"""Crypto-shredding of records-request answers, as for referrals
(service/referrals/shred.py): the ciphertexts and sealed keys of an answer's fields
are destroyed when the consent it relied on is revoked (fields not yet released),
and by the retention sweep once the answer was delivered more than the retention
period ago. The manifest entries stay, so the fields are still listed as withheld
and every audit entry still names them."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.clock import Clock
from service.records_requests.models import RecordsRequest, RecordsRequestField


async def destroy(session: AsyncSession, request_ids: list[uuid.UUID], *, unreleased: bool) -> int:
    if not request_ids:
        return 0
    stmt = (
        update(RecordsRequestField)
        .where(
            RecordsRequestField.request_id.in_(request_ids),
            RecordsRequestField.sealed_key.is_not(None),
        )
        .values(ciphertext=None, sealed_key=None)
    )
    if unreleased:
        stmt = stmt.where(RecordsRequestField.released_at.is_(None))
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def shred_for_revoked_grant(session: AsyncSession, consent_ids: set[uuid.UUID]) -> int:
    """In a consent revocation's transaction: every answer field not yet released
    under any version of the grant is destroyed. Returns the field count."""
    ids = (
        await session.scalars(
            select(RecordsRequest.id).where(RecordsRequest.consent_id.in_(list(consent_ids)))
        )
    ).all()
    return await destroy(session, list(ids), unreleased=True)


async def sweep(session: AsyncSession, *, retention: timedelta, clock: Clock) -> list[uuid.UUID]:
    """Destroy what answers delivered more than `retention` ago still hold; each
    request swept is audited once. Idempotent."""
    holding = select(RecordsRequestField.request_id).where(
        RecordsRequestField.sealed_key.is_not(None)
    )
    due = list(
        (
            await session.scalars(
                select(RecordsRequest).where(
                    RecordsRequest.delivered_at <= clock.now() - retention,
                    RecordsRequest.id.in_(holding),
                )
            )
        ).all()
    )
    for request in due:
        count = await destroy(session, [request.id], unreleased=False)
        await stage(
            session,
            AuditEvent(
                "request.shredded",
                None,
                actor_label="sweep",
                subject_ref=str(request.subject_id) if request.subject_id else None,
                counterpart_org_id=request.holder_org_id,
                details={"request_id": str(request.id), "reason": "retention", "fields": count},
            ),
            clock=clock,
        )
    return [r.id for r in due]
