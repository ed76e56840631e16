"""The retention sweep for every kind of record: crypto-shredding after retention,
on consent expiry and on abandonment.

VAWA forbids release "regardless of whether the information has been encoded,
encrypted, hashed, or otherwise protected" (DESIGN.md section 6): ciphertext must
not linger. Each kind shreds its own rows, in its own module, with its own rules
(service/referrals/shred.py: delivered past retention, withdrawn or declined;
service/records_requests/shred.py: answers delivered past retention;
service/referrals/expiry.py and service/records_requests/expiry.py: unreleased
fields under an expired consent, and what was never delivered within the
abandonment time); this module runs them all in one transaction, on a timer inside
`accord serve` and by hand as `accord sweep`, then makes the destroyed bytes leave
the live database files:

- SQLite: `secure_delete` already zeroed them in the pages; a WAL checkpoint
  (TRUNCATE) takes them out of the WAL file.
- PostgreSQL: an UPDATE leaves the old row version (the ciphertext) as a dead
  tuple. `VACUUM (FULL)` of the two ciphertext tables rewrites each into a new
  file without its dead tuples and unlinks the old one (measured: a plain VACUUM
  frees the space but leaves the bytes in the page until it is reused). It runs
  after the sweep's commit, on its own autocommit connection (VACUUM cannot run in
  a transaction), outside every request, on every sweep, and holds each table's
  lock for the time its rewrite takes (proportional to the live ciphertext it
  still holds; the tables hold only undelivered and retained fields). A row
  version some older transaction may still see (anywhere in the cluster: measured,
  PostgreSQL 15 keeps them while any older snapshot lives) survives a rewrite, so
  the bound is: gone from the live files at the first sweep after every
  transaction older than the destruction has ended. WAL segments and backups
  keep copies for as long as the deployer keeps them: docs/threat-model.md
  "How a record ends".
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from service.audit.ordering import lock_head
from service.clock import Clock
from service.records_requests import expiry as request_expiry
from service.records_requests import shred as request_shred
from service.referrals import expiry as referral_expiry
from service.referrals import shred as referral_shred

log = logging.getLogger("accord.retention")

# The default abandonment time (ACCORD_ABANDONMENT_DAYS, service/settings.py).
ABANDON_AFTER = timedelta(days=30)
# The tables that hold ciphertexts and sealed keys (their TOAST tables go with them).
CIPHERTEXT_TABLES = ("referral_fields", "records_request_fields")


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


async def vacuum_ciphertext_tables(factory: async_sessionmaker[AsyncSession]) -> None:
    """PostgreSQL: rewrite the ciphertext tables without their dead tuples, on an
    autocommit connection of its own (VACUUM refuses to run in a transaction)."""
    engine = factory.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "postgresql":
        return
    async with engine.connect() as conn:
        # On the driver, as the SQLite checkpoint: asyncpg runs a statement outside
        # a transaction in autocommit, which VACUUM needs.
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # noqa: S101 - a live pooled connection
        for table in CIPHERTEXT_TABLES:  # fixed names, never input
            await driver.execute(f"VACUUM (FULL) {table}")


async def run_sweep(
    factory: async_sessionmaker[AsyncSession],
    *,
    retention: timedelta,
    clock: Clock,
    abandon_after: timedelta = ABANDON_AFTER,
) -> list[uuid.UUID]:
    """One sweep in its own transaction: referrals past retention, withdrawn or
    declined; records-request answers past retention; unreleased fields under an
    expired consent; referrals and answers never delivered within `abandon_after`
    (moved to `expired`). Returns the ids of the referrals and requests whose bytes
    it destroyed. Then, outside the transaction, the maintenance step: on SQLite a
    WAL checkpoint every time (shreddings made by requests since the last sweep,
    withdrawals, declines, revocations, leave the WAL within one interval too); on
    PostgreSQL a VACUUM (FULL) of the ciphertext tables on every sweep, for the same
    reason."""
    async with factory() as session:
        # The audit head first, as every writer of these rows (service/audit/ordering.py):
        # no delivery runs beside the sweep, and each sees its outcome or none of it.
        await lock_head(session)
        shredded = await referral_expiry.abandon(session, after=abandon_after, clock=clock)
        shredded += await referral_shred.sweep(session, retention=retention, clock=clock)
        shredded += await referral_expiry.shred_for_expired_grants(session, clock=clock)
        shredded += await request_expiry.abandon(session, after=abandon_after, clock=clock)
        shredded += await request_shred.sweep(session, retention=retention, clock=clock)
        shredded += await request_expiry.shred_for_expired_grants(session, clock=clock)
        await session.commit()
    await checkpoint_sqlite_wal(factory)
    await vacuum_ciphertext_tables(factory)
    return list(dict.fromkeys(shredded))


async def sweep_loop(
    factory: async_sessionmaker[AsyncSession],
    *,
    retention: timedelta,
    clock: Clock,
    interval: float,
    abandon_after: timedelta = ABANDON_AFTER,
) -> None:
    """The periodic sweep task of a running service (`accord sweep` runs one by hand)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await run_sweep(factory, retention=retention, clock=clock, abandon_after=abandon_after)
        except (IntegrityError, OperationalError) as exc:
            log.warning(
                "sweep failed; retried at the next interval",
                extra={"event": "sweep_failed", "error_type": type(exc).__name__},
            )
