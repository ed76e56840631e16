"""How a referral ends without anyone acting: its consent expires, or it is never
delivered (abandonment). Both run in the retention sweep (service/retention.py).

- Consent expired: every field sent under a grant whose latest version has expired
  and not yet released can never be released (a delivery withholds it), so its
  ciphertext and sealed key are destroyed, as a revocation does
  (service/referrals/shred.py). Fields already released stay until the retention
  period after delivery. One `referral.shredded` entry per referral destroyed.
- Abandoned: a referral still `sent` (never delivered) longer than the abandonment
  time moves to `expired`, every ciphertext and sealed key it holds is destroyed,
  and both parties are told (a `referral.expired` event, a timeline event and one
  `referral.expired` audit entry). An expired referral cannot be delivered.

The caller holds the audit head (service/audit/ordering.py), so no delivery runs
beside either.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.clock import Clock
from service.consents.ending import expired_versions
from service.events.catalog import EventType
from service.referrals import shred
from service.referrals.models import Referral, ReferralStatus
from service.referrals.service import notify, record_event


async def _audit(
    session: AsyncSession, action: str, referral: Referral, reason: str, count: int, clock: Clock
) -> int:
    entry = await append(
        session,
        AuditEvent(
            action,
            None,
            actor_label="sweep",
            subject_ref=str(referral.subject_id),
            counterpart_org_id=referral.sender_org_id,
            details={"referral_id": str(referral.id), "reason": reason, "fields": count},
        ),
        clock=clock,
    )
    return entry.seq


async def shred_for_expired_grants(session: AsyncSession, *, clock: Clock) -> list[uuid.UUID]:
    """Destroy every unreleased field sent under an expired grant; audited once per
    referral whose fields this call destroyed. Returns those referrals."""
    held = select(Referral).where(
        Referral.consent_id.in_(expired_versions(clock.now())), Referral.shredded_at.is_(None)
    )
    touched: list[uuid.UUID] = []
    for referral in (await session.scalars(held)).all():
        count = await shred.shred_unreleased(
            session, referral, reason="consent_expired", clock=clock
        )
        if count:
            await _audit(session, "referral.shredded", referral, "consent_expired", count, clock)
            touched.append(referral.id)
    return touched


async def abandon(session: AsyncSession, *, after: timedelta, clock: Clock) -> list[uuid.UUID]:
    """Move every referral sent more than `after` ago and never delivered to
    `expired`, destroying what it holds. Idempotent (an expired one is not `sent`)."""
    now = clock.now()
    due = select(Referral).where(
        Referral.status == ReferralStatus.sent.value,
        Referral.delivered_at.is_(None),
        Referral.created_at <= now - after,
    )
    ended: list[uuid.UUID] = []
    for referral in (await session.scalars(due)).all():
        referral.status = ReferralStatus.expired.value
        referral.updated_at = now
        count = await shred.shred_referral(session, referral, reason="abandoned", clock=clock)
        seq = await _audit(session, "referral.expired", referral, "abandoned", count, clock)
        await record_event(session, referral.id, "expired", None, seq, clock, detail="abandoned")
        await notify(session, referral, EventType.referral_expired, referral.status, now)
        ended.append(referral.id)
    return ended
