"""P03 (docs/threat-model.md, docs/referrals.md): a referral to an organization the
directory shows as not accepting referrals, or not staffed around the clock, is
still taken (an emergency must get through), but the answer says so in
`recipient_warnings`, the client library returns it, and the timeline records it:
"sent" and each warning, all citing the `referral.sent` entry (staged and appended
at the commit on PostgreSQL, where the trigger of migration 0230 writes the
warnings' events; at once on SQLite), in a log that verifies."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from accord_client.api import AsyncAccordClient
from accord_client.audit_verify import verify_lines
from accord_client.envelope import PlainField
from sqlalchemy import func, select

from service.audit.models import AuditEntry, AuditPending
from service.auth.principals import Role
from service.referrals.models import ReferralEvent
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
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


async def _stored_timeline(app: Any, referral_id: str) -> list[tuple[str, int | None, Any]]:
    """(event, audit seq, time) of the referral's stored timeline, in row order."""
    async with app.state.sessionmaker() as session:
        rows = await session.execute(
            select(ReferralEvent.event, ReferralEvent.audit_seq, ReferralEvent.at)
            .where(ReferralEvent.referral_id == uuid.UUID(referral_id))
            .order_by(ReferralEvent.id)
        )
        return [(event, seq, at) for event, seq, at in rows.all()]


async def _log_verifies(app: Any, client: httpx.AsyncClient, world: World) -> int:
    """O-verify: the oversight export verifies against the signed checkpoint; its size."""
    auditor = world.headers("oversight", Role.auditor)
    exported = await client.get("/v1/audit/export", headers=auditor)
    assert exported.status_code == 200, exported.text
    result = verify_lines(
        [line for line in exported.content.split(b"\n") if line],
        public_key=app.state.keyring.checkpoint.public_key,
        origin=app.state.settings.audit_origin,
    )
    return int(result.size)


async def test_P03_a_referral_to_a_shelter_not_accepting_is_taken_and_says_so(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
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
        # The 201, built after the commit, is what is stored.
        assert seen.json() == sent
    async with app.state.sessionmaker() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.seq == next(iter(seq))))
    assert entry is not None
    assert entry.action == "referral.sent"
    assert json.loads(entry.body)["details"]["recipient_warnings"] == BOTH
    # As stored: "sent", then each warning in order, at one time, citing the entry;
    # nothing left staged; the log verifies with the entry in it.
    stored = await _stored_timeline(app, sent["id"])
    assert [(event, seq) for event, seq, _ in stored] == [
        (name, entry.seq) for name in ["sent", *BOTH]
    ]
    assert len({at for _, _, at in stored}) == 1
    async with app.state.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditPending)) == 0
    assert await _log_verifies(app, client, world) > entry.seq
    # A refused send (the same envelope again; the same Idempotency-Key with another
    # body) changes nothing: no referral, entry or timeline event (O-unchanged).
    envelope = kit.seal()
    keyed = {**kit.staff("vsp"), "Idempotency-Key": "p03-refused"}
    first = await client.post("/v1/referrals", json=kit.body(envelope), headers=keyed)
    assert first.status_code == 201, first.text
    assert [e["event"] for e in first.json()["timeline"]] == ["sent", *BOTH]
    before = db.dump()
    replayed = await client.post("/v1/referrals", json=kit.body(envelope), headers=kit.staff("vsp"))
    assert replayed.status_code == 422, replayed.text
    assert replayed.json()["type"].endswith("envelope-replayed")
    reused = await client.post(
        "/v1/referrals", json=kit.body(kit.seal(), urgency="routine"), headers=keyed
    )
    assert reused.status_code == 422, reused.text
    assert db.dump() == before

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
