"""Release inputs reused under the policy epoch (service/disclosures/inputs.py), on both
engines: every change to what a release reads besides the consent moves the epoch
in the database itself, and a delivery made after a change decides on the change
even when an earlier delivery left the same inputs in the process's cache.

Each story first delivers once with everything released (the cache now holds the
organizations, agreement flows and rules), then changes one input, then delivers
again."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Executable, delete, select, text, update

from service.audit.ordering import lock_head
from service.auth.principals import Role
from service.collaborations.models import AgreementVersion, Membership
from service.disclosures.decide import INACTIVE_ORGANIZATION
from service.disclosures.inputs import PartyInputs, ReleaseInputCache, party_inputs
from service.organizations.models import Organization, OrganizationPolicy
from tests.referrals.support import PLANTED, Kit
from tests.support.world import FLOW_CATEGORIES


async def _epoch(app: Any) -> int:
    async with app.state.sessionmaker() as session:
        value = (await session.execute(text("SELECT policy_epoch FROM audit_head"))).scalar_one()
        return int(value)


async def _warm(kit: Kit) -> str:
    """A referral delivered once with every field released: the cache is warm."""
    referral = await kit.send()
    first = (await kit.deliver(referral["id"])).json()
    assert {f["name"] for f in first["released"]} == set(PLANTED)
    return str(referral["id"])


async def _deliver(kit: Kit, referral_id: str) -> dict[str, Any]:
    r = await kit.deliver(referral_id)
    assert r.status_code == 200, r.text
    delivery: dict[str, Any] = r.json()
    return delivery


async def test_C12_removal_after_a_cached_release_withholds_the_next_delivery(
    kit: Kit, app: Any
) -> None:
    referral_id = await _warm(kit)
    before = await _epoch(app)
    r = await kit.client.delete(
        f"/v1/collaborations/{kit.world.collaboration_id}/members/{kit.world.orgs['shelter']}",
        headers=kit.world.headers("platform", Role.platform_admin),
    )
    assert r.status_code in (200, 204), r.text
    assert await _epoch(app) > before
    delivery = await _deliver(kit, referral_id)
    assert delivery["released"] == []
    assert {w["name"] for w in delivery["withheld"]} == set(PLANTED)


async def test_forbid_rule_after_a_cached_release_withholds_that_field(kit: Kit) -> None:
    referral_id = await _warm(kit)
    await kit.forbid_contact()
    delivery = await _deliver(kit, referral_id)
    assert [w["name"] for w in delivery["withheld"]] == ["phone"]


async def test_narrowed_agreement_after_a_cached_release_withholds_the_dropped_category(
    kit: Kit,
) -> None:
    referral_id = await _warm(kit)
    now = kit.world.clock.now()
    r = await kit.client.put(
        f"/v1/collaborations/{kit.world.collaboration_id}/agreement",
        json={
            "flows": [
                {
                    "from_sector": "victim_services",
                    "to_sector": "shelter",
                    "purposes": ["services_referral"],
                    "categories": [c for c in FLOW_CATEGORIES if c != "contact"],
                }
            ],
            "effective_from": (now - timedelta(days=1)).isoformat(),
            "effective_to": (now + timedelta(days=365)).isoformat(),
            "document_sha256": hashlib.sha256(b"narrower mou").hexdigest(),
        },
        headers=kit.world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 200, r.text
    await kit.world.sign_agreement()  # it binds once the members signed it (issue 24)
    delivery = await _deliver(kit, referral_id)
    assert [w["name"] for w in delivery["withheld"]] == ["phone"]


async def test_sender_deactivated_by_sql_after_a_cached_release_withholds_everything(
    kit: Kit, app: Any
) -> None:
    """An operator's SQL, not the service's code, changes the input: the trigger
    still moves the epoch."""
    referral_id = await _warm(kit)
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Organization)
            .where(Organization.id == kit.world.orgs["vsp"])
            .values(active=False)
        )
        await session.commit()
    delivery = await _deliver(kit, referral_id)
    assert delivery["released"] == []
    assert {p for w in delivery["withheld"] for p in w["policies"]} == {INACTIVE_ORGANIZATION}


async def test_every_watched_write_moves_the_epoch_and_availability_does_not(
    kit: Kit, app: Any
) -> None:
    vsp = kit.world.orgs["vsp"]
    before = await _epoch(app)
    await kit.forbid_contact()
    assert await _epoch(app) > before
    org = Organization.id == vsp
    statements: list[tuple[Executable, bool]] = [
        (update(Organization).where(org).values(sector=Organization.sector), True),
        (update(Organization).where(org).values(active=Organization.active), True),
        (update(Organization).where(org).values(name="renamed"), False),
        (update(Membership).values(removed_by=Membership.removed_by), True),
        (update(AgreementVersion).values(version=AgreementVersion.version), True),
        (delete(OrganizationPolicy).where(OrganizationPolicy.org_id == vsp), True),
    ]
    for statement, moves in statements:
        before = await _epoch(app)
        async with app.state.sessionmaker() as session:
            await session.execute(statement)
            await session.commit()
        assert (await _epoch(app) > before) is moves, str(statement)
    before = await _epoch(app)
    r = await kit.client.put(
        f"/v1/organizations/{kit.world.orgs['shelter']}/availability",
        json={
            "accepting_referrals": False,
            "capacity": 0,
            "hours": "24/7",
            "languages": ["en"],
            "services": ["emergency_shelter"],
            "populations": ["adults"],
        },
        headers=kit.world.headers("shelter", Role.org_admin),
    )
    assert r.status_code == 200, r.text
    assert await _epoch(app) == before


def _inputs() -> PartyInputs:
    return PartyInputs(None, None, (), ())


def test_cache_never_serves_another_epoch() -> None:
    cache = ReleaseInputCache(size=2)
    key = (uuid.uuid4(), uuid.uuid4(), "v1")
    value = _inputs()
    cache.put(5, key, value)
    assert cache.get(5, key) is value
    assert cache.get(6, key) is None
    assert cache.get(4, key) is None
    cache.put(4, key, _inputs())  # read under an older epoch: not kept
    assert cache.get(5, key) is value
    cache.put(6, (uuid.uuid4(), uuid.uuid4(), "v1"), _inputs())  # a newer epoch empties it
    assert cache.get(5, key) is None
    assert cache.get(6, key) is None


def test_cache_is_bounded() -> None:
    cache = ReleaseInputCache(size=2)
    keys = [(uuid.uuid4(), uuid.uuid4(), "v1") for _ in range(3)]
    for key in keys:
        cache.put(1, key, _inputs())
    assert cache.get(1, keys[0]) is None
    assert cache.get(1, keys[2]) is not None


async def test_inputs_read_in_a_transaction_that_changed_them_are_never_cached(
    kit: Kit, app: Any
) -> None:
    """A transaction that wrote a watched table sees its own uncommitted change and a
    moved epoch; if it rolls back, the next committed change reuses that epoch
    number. What it read must not be served then."""
    referral_id = await _warm(kit)
    shelter, vsp = kit.world.orgs["shelter"], kit.world.orgs["vsp"]
    engine = app.state.policy_engine
    async with app.state.sessionmaker() as session:
        membership = (
            await session.scalars(
                select(Membership).where(
                    Membership.org_id == shelter, Membership.removed_at.is_(None)
                )
            )
        ).one()
        membership.removed_at = kit.world.clock.now()
        await session.flush()
        head = await lock_head(session)
        seen = await party_inputs(session, engine, vsp, shelter, epoch=head.policy_epoch)
        assert seen.agreements == ()  # its own uncommitted removal
        await session.rollback()
    async with app.state.sessionmaker() as session:  # another change, same epoch number
        await session.execute(update(AgreementVersion).values(version=AgreementVersion.version))
        await session.commit()
    delivery = await _deliver(kit, referral_id)
    assert {f["name"] for f in delivery["released"]} == set(PLANTED)
