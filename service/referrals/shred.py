"""Crypto-shredding: destroy ciphertexts and sealed keys, keep metadata.

A field's ciphertext and sealed key are set to NULL (its manifest entry stays, so
it can still be delivered as withheld and its audit entries still verify):

- on withdrawal by the sender and on decline by the recipient (at once);
- on revocation of the consent, for every field not yet released (at once, in the
  revocation's transaction);
- after delivery, once the retention period has passed (the sweep);
- when the consent expires, for every field not yet released, and when a referral
  is never delivered within the abandonment time (the sweep,
  service/referrals/expiry.py).

On SQLite `secure_delete` is on (service/db/engine.py), so freed cells are zeroed, and
the sweep checkpoints the WAL afterwards so old page images leave the WAL file
too. On PostgreSQL the sweep then vacuums the ciphertext tables
(service/retention.py); docs/threat-model.md says what survives where.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.audit.ordering import lock_head
from service.clock import Clock
from service.referrals.models import Referral, ReferralField, ReferralStatus

log = logging.getLogger("accord.referrals")


async def _shred_fields(
    session: AsyncSession, referral_id: uuid.UUID, *, unreleased_only: bool
) -> int:
    stmt = (
        update(ReferralField)
        .where(ReferralField.referral_id == referral_id, ReferralField.sealed_key.is_not(None))
        .values(ciphertext=None, sealed_key=None)
    )
    if unreleased_only:
        stmt = stmt.where(ReferralField.released_at.is_(None))
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)


async def shred_referral(
    session: AsyncSession, referral: Referral, *, reason: str, clock: Clock
) -> int:
    """Destroy every remaining secret part of one referral; returns the field count."""
    count = await _shred_fields(session, referral.id, unreleased_only=False)
    if referral.shredded_at is None:
        referral.shredded_at = clock.now()
        referral.shred_reason = reason
    await session.flush()
    return count


async def shred_for_revoked_grant(
    session: AsyncSession, consent_ids: set[uuid.UUID], *, clock: Clock
) -> list[uuid.UUID]:
    """Called in a consent revocation's transaction: every field not yet released
    under any version of the grant is destroyed. Returns the referrals touched."""
    referrals = list(
        (
            await session.scalars(
                select(Referral).where(
                    Referral.consent_id.in_(list(consent_ids)), Referral.shredded_at.is_(None)
                )
            )
        ).all()
    )
    touched: list[uuid.UUID] = []
    for referral in referrals:
        if await shred_unreleased(session, referral, reason="consent_revoked", clock=clock):
            touched.append(referral.id)
    return touched


async def shred_unreleased(
    session: AsyncSession, referral: Referral, *, reason: str, clock: Clock
) -> int:
    """Destroy the fields of one referral not yet released (its grant revoked or
    expired); once none holds a key, the referral is marked shredded. Returns the
    field count destroyed."""
    count = await _shred_fields(session, referral.id, unreleased_only=True)
    remaining = (
        await session.scalars(
            select(ReferralField.id).where(
                ReferralField.referral_id == referral.id,
                ReferralField.sealed_key.is_not(None),
            )
        )
    ).first()
    if remaining is None and referral.shredded_at is None:
        referral.shredded_at = clock.now()
        referral.shred_reason = reason
    await session.flush()
    return count


async def sweep(session: AsyncSession, *, retention: timedelta, clock: Clock) -> list[uuid.UUID]:
    """Shred every referral delivered more than `retention` ago and every withdrawn
    or declined one still holding bytes. Each shredding is audited. Idempotent.

    Locks the audit head (and so the policy lock) before touching any row, as every
    writer of referrals does: no delivery runs beside the sweep, and the lock order
    is the same everywhere (service/disclosures/decide.py)."""
    await lock_head(session)
    now = clock.now()
    due = list(
        (
            await session.scalars(
                select(Referral).where(
                    Referral.shredded_at.is_(None),
                    (Referral.delivered_at <= now - retention)
                    | Referral.status.in_(
                        [ReferralStatus.withdrawn.value, ReferralStatus.declined.value]
                    ),
                )
            )
        ).all()
    )
    for referral in due:
        reason = "retention" if referral.delivered_at is not None else referral.status
        count = await shred_referral(session, referral, reason=reason, clock=clock)
        await append(
            session,
            AuditEvent(
                "referral.shredded",
                None,
                actor_label="sweep",
                subject_ref=str(referral.subject_id),
                counterpart_org_id=referral.sender_org_id,
                details={"referral_id": str(referral.id), "reason": reason, "fields": count},
            ),
            clock=clock,
        )
    if due:
        log.info("sweep shredded referrals", extra={"event": "sweep", "count": len(due)})
    return [r.id for r in due]
