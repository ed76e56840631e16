"""Referral lifecycle races (SECURITY-TESTS D11) and concurrent Idempotency-Key
retries (D12), on both engines. The requests run concurrently through the app (each
with its own session and transaction); on PostgreSQL they meet on row locks, on
SQLite on the single write lock. Either way exactly one of two conflicting
transitions wins and the other is a 409 that changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.referrals.models import Referral, ReferralField
from tests.referrals.support import Kit

pytestmark = pytest.mark.race


async def _post(kit: Kit, rid: str, action: str, org: str, body: Any = None) -> httpx.Response:
    return await kit.client.post(f"/v1/referrals/{rid}/{action}", json=body, headers=kit.staff(org))


async def _fields(app: Any, rid: str) -> list[ReferralField]:
    async with app.state.sessionmaker() as session:
        referral = await session.get(Referral, uuid.UUID(rid))
        assert referral is not None
        rows = await session.scalars(
            select(ReferralField).where(ReferralField.referral_id == referral.id)
        )
        return list(rows.all())


@pytest.mark.parametrize("attempt", range(3))
async def test_D11_withdraw_versus_deliver_exactly_one_wins(
    kit: Kit, app: Any, attempt: int
) -> None:
    rid = (await kit.send())["id"]
    withdraw, deliver = await asyncio.gather(
        _post(kit, rid, "withdraw", "vsp"), _post(kit, rid, "deliver", "shelter")
    )
    assert sorted([withdraw.status_code, deliver.status_code]) == [200, 409], (
        withdraw.text,
        deliver.text,
    )
    fields = await _fields(app, rid)
    if withdraw.status_code == 200:
        # The withdraw won: nothing was released and the sealed keys are gone.
        assert all(f.ciphertext is None and f.sealed_key is None for f in fields)
        assert all(f.released_at is None for f in fields)
        assert (await _post(kit, rid, "deliver", "shelter")).status_code == 409
    else:
        assert deliver.json()["released"]
        assert all(f.released_at is not None for f in fields)


@pytest.mark.parametrize("attempt", range(3))
async def test_D11_accept_versus_decline_exactly_one_wins(kit: Kit, attempt: int) -> None:
    rid = (await kit.send())["id"]
    assert (await _post(kit, rid, "deliver", "shelter")).status_code == 200
    accept, decline = await asyncio.gather(
        _post(kit, rid, "accept", "shelter"),
        _post(kit, rid, "decline", "shelter", {"reason": "no_capacity"}),
    )
    assert sorted([accept.status_code, decline.status_code]) == [200, 409]
    state = (await kit.client.get(f"/v1/referrals/{rid}", headers=kit.staff("vsp"))).json()
    assert state["status"] == ("accepted" if accept.status_code == 200 else "declined")


async def test_D11_close_before_accept_is_409(kit: Kit) -> None:
    rid = (await kit.send())["id"]
    assert (await _post(kit, rid, "deliver", "shelter")).status_code == 200
    r = await _post(kit, rid, "close", "shelter", {"outcome": "services_provided"})
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"


async def test_D12_concurrent_retries_with_one_key_make_one_referral(kit: Kit, app: Any) -> None:
    body = kit.body(kit.seal())
    headers = {**kit.staff("vsp"), "Idempotency-Key": "concurrent-retry-1"}
    first, second = await asyncio.gather(
        kit.client.post("/v1/referrals", json=body, headers=headers),
        kit.client.post("/v1/referrals", json=body, headers=headers),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json() == second.json()
    async with app.state.sessionmaker() as session:
        ids = (await session.scalars(select(Referral.id))).all()
    assert [str(i) for i in ids] == [first.json()["id"]]
    # The same key with another body: refused, nothing new stored.
    other = await kit.client.post(
        "/v1/referrals", json={**body, "urgency": "routine"}, headers=headers
    )
    assert other.status_code == 422
    async with app.state.sessionmaker() as session:
        assert len((await session.scalars(select(Referral.id))).all()) == 1
