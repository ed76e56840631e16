"""H10: the retention sweep interrupted midway, then run again. The sweep is one
transaction, so an interruption leaves everything as it was (no key destroyed
without its audit entry, no entry without its destruction); the rerun destroys
every due key and audits each destruction once; a third run does nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from service.audit.models import AuditEntry
from service.referrals import shred
from service.referrals.models import ReferralField
from service.retention import run_sweep
from tests.referrals.support import Kit
from tests.support.databases import TestDatabase

RETENTION = timedelta(days=7)


async def _state(app: Any) -> tuple[int, int]:
    """(fields still holding a sealed key, referral.shredded entries)."""
    async with app.state.sessionmaker() as session:
        keys = (
            await session.scalars(
                select(ReferralField.id).where(ReferralField.sealed_key.is_not(None))
            )
        ).all()
        entries = (
            await session.scalars(
                select(AuditEntry.seq).where(AuditEntry.action == "referral.shredded")
            )
        ).all()
    return len(keys), len(entries)


async def test_H10_sweep_interrupted_then_rerun_is_idempotent(
    kit: Kit, app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    referrals = [(await kit.send())["id"] for _ in range(3)]
    for rid in referrals:
        assert (await kit.deliver(rid)).status_code == 200
    kit.world.clock.advance(RETENTION.total_seconds())
    holding, audited = await _state(app)
    assert holding > 0
    assert audited == 0

    original = shred.shred_referral
    calls = 0

    async def dies_on_the_second(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OperationalError("UPDATE referral_fields", {}, Exception("killed"))
        return await original(*args, **kwargs)

    before = db.dump()
    monkeypatch.setattr(shred, "shred_referral", dies_on_the_second)
    with pytest.raises(OperationalError):
        await run_sweep(app.state.sessionmaker, retention=RETENTION, clock=kit.world.clock)
    assert db.dump() == before
    monkeypatch.undo()

    shredded = await run_sweep(app.state.sessionmaker, retention=RETENTION, clock=kit.world.clock)
    assert sorted(str(i) for i in shredded) == sorted(referrals)
    assert await _state(app) == (0, 3)
    assert await run_sweep(app.state.sessionmaker, retention=RETENTION, clock=kit.world.clock) == []
    assert await _state(app) == (0, 3)
