"""P03 (docs/threat-model.md, docs/referrals.md): a referral to an organization the
directory shows as not accepting referrals, or not staffed around the clock, is
still taken (an emergency must get through), but the answer says so in
`recipient_warnings`, the client library returns it, and the timeline records it."""

from __future__ import annotations

import json
from typing import Any

import httpx
from accord_client.api import AsyncAccordClient
from accord_client.envelope import PlainField
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from tests.referrals.support import make_kit
from tests.support.world import World

BOTH = ["recipient_not_accepting", "recipient_limited_hours"]


async def _availability(
    client: httpx.AsyncClient, world: World, *, accepting: bool, hours: str
) -> None:
    r = await client.put(
        f"/v1/organizations/{world.orgs['shelter']}/availability",
        json={
            "accepting_referrals": accepting,
            "hours": hours,
            "languages": [],
            "services": [],
            "populations": [],
        },
        headers=world.headers("shelter", Role.org_admin),
    )
    assert r.status_code == 200, r.text


async def test_P03_a_referral_to_a_shelter_not_accepting_is_taken_and_says_so(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    kit = await make_kit(client, world)
    await _availability(client, world, accepting=False, hours="business_hours")
    sent = await kit.send()  # 201 (asserted by the kit)
    assert sent["recipient_warnings"] == BOTH
    assert [e["event"] for e in sent["timeline"]] == ["sent", *BOTH]
    seq = {e["audit_seq"] for e in sent["timeline"]}
    assert len(seq) == 1
    assert None not in seq
    # Both parties read it later, too.
    for org in ("vsp", "shelter"):
        seen = await client.get(f"/v1/referrals/{sent['id']}", headers=kit.staff(org))
        assert seen.json()["recipient_warnings"] == BOTH
    async with app.state.sessionmaker() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.seq == next(iter(seq))))
    assert entry is not None
    assert json.loads(entry.body)["details"]["recipient_warnings"] == BOTH

    await _availability(client, world, accepting=True, hours="on_call")
    assert (await kit.send())["recipient_warnings"] == ["recipient_limited_hours"]
    await _availability(client, world, accepting=True, hours="24/7")
    open_door = await kit.send()
    assert open_door["recipient_warnings"] == []
    assert [e["event"] for e in open_door["timeline"]] == ["sent"]


async def test_P03_the_client_library_returns_the_warnings(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    kit = await make_kit(client, world)
    await _availability(client, world, accepting=False, hours="24/7")
    async with AsyncAccordClient(
        base_url="http://accord.test",
        token=world.tokens.mint(world.orgs["vsp"], [Role.caseworker]),
        transport=httpx.ASGITransport(app=app),
    ) as api:
        referral = await api.send_referral(
            keys=kit.keys["vsp"],
            recipient_org_id=world.orgs["shelter"],
            subject_id=kit.subject,
            consent_id=kit.consent["id"],
            purpose="services_referral",
            fields=[PlainField(name="needs", category="needs", value="a bed tonight")],
        )
    assert referral["recipient_warnings"] == ["recipient_not_accepting"]
