"""Crypto-shredding: destroy ciphertexts and sealed keys, keep metadata.

A field's ciphertext and sealed key are set to NULL (its manifest entry stays, so
it can still be delivered as withheld and its audit entries still verify):

- on withdrawal by the sender and on decline by the recipient (at once);
- on revocation of the consent, for every field not yet released (at once, in the
  revocation's transaction);
- after delivery, once the retention period has passed (the sweep).

On SQLite `secure_delete` is on (service/db/engine.py), so freed cells are zeroed, and
the sweep checkpoints the WAL afterwards so old page images leave the WAL file
too. On PostgreSQL dead tuples remain until VACUUM; docs/threat-model.md says
what that means.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.audit.log import AuditEvent, append, lock_head
from service.clock import Clock
from service.records_requests import shred as request_shred
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
        count = await _shred_fields(session, referral.id, unreleased_only=True)
        remaining = (
            await session.scalars(
                select(ReferralField.id).where(
                    ReferralField.referral_id == referral.id,
                    ReferralField.sealed_key.is_not(None),
                )
            )
        ).first()
        if remaining is None:
            referral.shredded_at = clock.now()
            referral.shred_reason = "consent_revoked"
        if count:
            touched.append(referral.id)
    await session.flush()
    return touched


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


async def checkpoint_sqlite_wal(factory: async_sessionmaker[AsyncSession]) -> None:
    """After a shredding has committed: copy the WAL into the database file and
    truncate it, so destroyed bytes survive in neither (secure_delete zeroed them in
    the pages). Run outside any transaction: a checkpoint cannot pass an open one."""
    engine = factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "sqlite":
        return
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # noqa: S101 - a live pooled connection
        await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def run_sweep(
    factory: async_sessionmaker[AsyncSession], *, retention: timedelta, clock: Clock
) -> list[uuid.UUID]:
    """One sweep (referrals, then records-request answers) in its own transaction,
    then (SQLite) a WAL checkpoint outside it, every time: shreddings made by
    requests since the last sweep (withdrawals, declines, revocations) leave the
    WAL within one interval too."""
    async with factory() as session:
        shredded = await sweep(session, retention=retention, clock=clock)
        shredded += await request_shred.sweep(session, retention=retention, clock=clock)
        await session.commit()
    await checkpoint_sqlite_wal(factory)
    return shredded


async def sweep_loop(
    factory: async_sessionmaker[AsyncSession],
    *,
    retention: timedelta,
    clock: Clock,
    interval: float,
) -> None:
    """The periodic sweep task of a running service (`accord sweep` runs one by hand)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_sweep(factory, retention=retention, clock=clock)
        except (IntegrityError, OperationalError) as exc:
            log.warning(
                "sweep failed; retried at the next interval",
                extra={"event": "sweep_failed", "error_type": type(exc).__name__},
            )
