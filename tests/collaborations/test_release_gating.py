"""Real deliveries under countersigned agreements (issue 24): a flow one party signed
never releases, both signatures release it, and a withdrawal withholds the next
delivery and tells the earlier recipients. The O-order oracle of SECURITY-TESTS,
applied to signatures: no disclosure under a withdrawn signature follows the
withdrawal's audit entry, with deliveries racing it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from tests.collaborations.support import flow, sign, withdraw
from tests.referrals.support import PLANTED, Kit
from tests.support.world import FLOW_CATEGORIES


async def _entries(app: Any) -> list[AuditEntry]:
    async with app.state.sessionmaker() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


async def test_a_flow_one_party_signed_never_releases_and_both_signatures_do(kit: Kit) -> None:
    world, client = kit.world, kit.client
    collab = str(world.collaboration_id)
    # Sent while the agreement binds (sending checks it too); delivered one by one.
    pending = [(await kit.send())["id"] for _ in range(3)]
    assert (await withdraw(client, world, "vsp", collab)).status_code == 200
    withheld = await kit.deliver(pending[0])
    assert withheld.status_code == 200, withheld.text
    assert withheld.json()["released"] == []
    refused = await client.post(
        "/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp")
    )
    assert refused.status_code == 422, "nothing may be sent under a withdrawn signature"
    created = await client.post(
        "/v1/collaborations",
        json={
            "name": "VSP and shelter",
            "members": [str(world.orgs["vsp"]), str(world.orgs["shelter"])],
            "agreement": {
                "flows": [flow("shelter", ["services_referral"], FLOW_CATEGORIES)],
                "effective_from": world.clock.now().isoformat(),
                "document_sha256": "cd" * 32,
            },
        },
        headers=world.headers("platform", Role.platform_admin),
    )
    assert created.status_code == 201, created.text
    second = created.json()["id"]
    world.clock.advance(1)
    assert (await sign(client, world, "vsp", 1, second)).status_code == 201
    one = await kit.deliver(pending[1])
    assert one.json()["released"] == [], "signed by the sender only: nothing flows"
    assert (await sign(client, world, "shelter", 1, second)).status_code == 201
    both = await kit.deliver(pending[2])
    assert {f["name"] for f in both.json()["released"]} == set(PLANTED)


async def test_withdrawal_racing_deliveries_is_ordered_in_the_log(kit: Kit, app: Any) -> None:
    world, client = kit.world, kit.client
    referrals = [(await kit.send({"phone": f"+1-555-03{i:02d}"}))["id"] for i in range(6)]

    async def withdrawal() -> httpx.Response:
        await asyncio.sleep(0)
        return await withdraw(client, world, "vsp", str(world.collaboration_id))

    results = await asyncio.gather(*(kit.deliver(r) for r in referrals), withdrawal())
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    entries = await _entries(app)
    withdrawn_at = next(e.seq for e in entries if e.action == "agreement.signature_withdrawn")
    late = [e.seq for e in entries if e.action == "disclosure" and e.seq > withdrawn_at]
    assert late == [], f"disclosures {late} follow the withdrawal {withdrawn_at}"
    # Every delivery after it withholds everything; the shelter has been told.
    again = await kit.deliver(referrals[0])
    assert again.json()["released"] == []
    events = await client.get("/v1/events", headers=kit.staff("shelter"))
    told = [e for e in events.json()["items"] if e["type"] == "agreement.signature_withdrawn"]
    assert [e["data"]["org_id"] for e in told] == [str(world.orgs["vsp"])]
    withdrawal_entry = json.loads(next(e.body for e in entries if e.seq == withdrawn_at))
    assert withdrawal_entry["details"]["signatures"][0]["org_id"] == str(world.orgs["vsp"])
