"""What an erasure must also end, in domains above subjects (service/subjects/erasure.py).

Installed on every session by service/storage.py, as the revocation's shredder is
(service/consents/ending.py): every grant about the subject is revoked through the
consents service (so its `consent.withdrawn` events and `consent.revoked` audit
entries are a withdrawal's), then every ciphertext and sealed key about the subject
still held, released or not, is destroyed: its referrals' fields (the referrals
domain's own `shred_referral`, reason `subject_erased`) and its records-request
answers' fields. Manifests, metadata and audit entries stay.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.principals import Principal
from service.clock import Clock
from service.consents import service as consent_service
from service.consents.models import ConsentRevocation, ConsentVersion
from service.records_requests.models import RecordsRequest, RecordsRequestField
from service.referrals import shred as referral_shred
from service.referrals.models import Referral

REASON = "subject_erased"


async def _revoke_grants(
    session: AsyncSession, subject_id: uuid.UUID, *, principal: Principal, clock: Clock
) -> None:
    revoked = select(ConsentRevocation.grant_id)
    latest: dict[uuid.UUID, ConsentVersion] = {}
    for version in (
        await session.scalars(
            select(ConsentVersion).where(
                ConsentVersion.subject_id == subject_id, ConsentVersion.grant_id.not_in(revoked)
            )
        )
    ).all():
        if version.grant_id not in latest or version.version > latest[version.grant_id].version:
            latest[version.grant_id] = version
    for grant_id in sorted(latest):
        await consent_service.revoke(
            session,
            principal=principal,
            consent_id=latest[grant_id].id,
            reason="The subject was erased.",
            clock=clock,
        )


async def erase_holdings(
    session: AsyncSession, subject_id: uuid.UUID, *, principal: Principal, clock: Clock
) -> int:
    """Revoke the subject's grants, destroy every field about it; the field count."""
    await _revoke_grants(session, subject_id, principal=principal, clock=clock)
    count = 0
    referrals = (
        await session.scalars(select(Referral).where(Referral.subject_id == subject_id))
    ).all()
    for referral in referrals:
        count += await referral_shred.shred_referral(session, referral, reason=REASON, clock=clock)
    requests = select(RecordsRequest.id).where(RecordsRequest.subject_id == subject_id)
    result = await session.execute(
        update(RecordsRequestField)
        .where(
            RecordsRequestField.request_id.in_(requests),
            RecordsRequestField.sealed_key.is_not(None),
        )
        .values(ciphertext=None, sealed_key=None)
        .execution_options(synchronize_session=False)
    )
    count += int(getattr(result, "rowcount", 0) or 0)
    await session.flush()
    return count
