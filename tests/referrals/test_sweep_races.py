"""A first delivery racing the sweep that abandons its referral (issue 23).

Either the delivery is decided first (200, every released field with its whole
ciphertext and sealed key, and the referral is delivered, never expired), or the
sweep is (the referral is expired, its bytes destroyed, and the delivery is
refused with 409): never a 200 with a missing or truncated key, never both
endings, and each destruction audited exactly once. Both engines; on SQLite the
two never overlap (one writer), on PostgreSQL they contend for the audit head."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from service.audit.models import AuditEntry
from service.retention import run_sweep
from tests.referrals.support import Kit
from tests.referrals.test_sweep_raw_storage import RETENTION

# Short, so that the consent (and the kit's other terms) stay live across the rounds.
ABANDON = timedelta(hours=1)


async def _entries(app: Any, kind: str, referral_id: str) -> int:
    async with app.state.sessionmaker() as session:
        bodies = (await session.scalars(select(AuditEntry.body))).all()
        total = await session.scalar(select(func.count()).select_from(AuditEntry))
    assert total == len(bodies)
    return sum(1 for b in bodies if f'"{kind}"' in b and referral_id in b)


async def test_D03_a_first_delivery_racing_abandonment(kit: Kit, app: Any) -> None:
    outcomes = set()
    for _ in range(4):
        referral = await kit.send()
        kit.world.clock.advance(ABANDON.total_seconds() + 1)
        delivery, _ = await asyncio.gather(
            kit.deliver(referral["id"]),
            run_sweep(
                app.state.sessionmaker,
                retention=RETENTION,
                clock=kit.world.clock,
                abandon_after=ABANDON,
            ),
        )
        state = await kit.client.get(f"/v1/referrals/{referral['id']}", headers=kit.staff("vsp"))
        assert state.status_code == 200, state.text
        status = state.json()["status"]
        expired = await _entries(app, "referral.expired", referral["id"])
        if delivery.status_code == 200:
            outcomes.add("delivered")
            assert status != "expired"
            assert expired == 0
            released = delivery.json()["released"]
            assert released
            for field in released:
                assert base64.b64decode(field["ciphertext"])
                assert base64.b64decode(field["sealed_key"])
        else:
            outcomes.add("expired")
            assert delivery.status_code == 409, delivery.text
            assert status == "expired"
            assert expired == 1
        # The next sweep changes nothing more: each destruction is audited once.
        await run_sweep(
            app.state.sessionmaker,
            retention=RETENTION,
            clock=kit.world.clock,
            abandon_after=ABANDON,
        )
        assert await _entries(app, "referral.expired", referral["id"]) == expired
    assert outcomes  # at least one round ran; which ending won is the race's
