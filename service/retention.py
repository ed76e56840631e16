"""The retention sweep for every kind of record: crypto-shredding after retention.

VAWA forbids release "regardless of whether the information has been encoded,
encrypted, hashed, or otherwise protected" (DESIGN.md section 6): ciphertext must
not linger. Each kind shreds its own rows, in its own module, with its own rules
(service/referrals/shred.py: delivered past retention, withdrawn or declined;
service/records_requests/shred.py: answers delivered past retention); this module
runs them all in one transaction, on a timer inside `accord serve` and by hand as
`accord sweep`, then checkpoints SQLite's WAL so the destroyed bytes leave the WAL
file too (secure_delete already zeroed them in the pages). On PostgreSQL dead
tuples remain until VACUUM; docs/threat-model.md says what that means.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.clock import Clock
from service.records_requests import shred as request_shred
from service.referrals import shred as referral_shred

log = logging.getLogger("accord.retention")


async def shred_for_revoked_grant(
    session: AsyncSession, consent_ids: set[uuid.UUID], *, clock: Clock
) -> None:
    """In a revocation's transaction: destroy every field sent under these grant
    versions and not yet released, of every kind (service/consents/ending.py)."""
    await referral_shred.shred_for_revoked_grant(session, consent_ids, clock=clock)
    await request_shred.shred_for_revoked_grant(session, consent_ids)


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
        shredded = await referral_shred.sweep(session, retention=retention, clock=clock)
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
