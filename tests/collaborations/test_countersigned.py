"""Agreements bind only the members that countersigned them (issue 24,
docs/agreements.md), seen through explain: the same inputs as a real release."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from accord_client import agreements
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from tests.collaborations.support import allowed, explain, flow, history, propose, sign, withdraw
from tests.support.databases import TestDatabase
from tests.support.world import FLOW_CATEGORIES, World

LE = ["identity", "contact"]


async def test_a_flow_signed_by_one_party_never_applies_and_explain_names_the_missing_signature(
    client: httpx.AsyncClient, world: World
) -> None:
    collab = str(world.collaboration_id)
    version = await propose(
        client,
        world,
        [
            flow("shelter", ["services_referral"], FLOW_CATEGORIES),
            flow("law_enforcement", ["investigation"], LE),
        ],
        b"v2 with police",
        collab,
    )
    assert (await sign(client, world, "vsp", version, collab)).status_code == 201
    one = await explain(client, world, "vsp", "police", "investigation", LE)
    assert allowed(one) == set()
    [standing] = one["agreements"]
    assert standing["version_in_force"] == 1
    assert standing["missing_signatures"] == [
        {"version": version, "org_id": str(world.orgs["police"])}
    ]
    assert (await sign(client, world, "police", version, collab)).status_code == 201
    both = await explain(client, world, "vsp", "police", "investigation", LE)
    assert allowed(both) == set(LE)
    assert both["agreements"][0]["version_in_force"] == version
    assert both["agreements"][0]["missing_signatures"] == []


async def test_amendment_follows_the_last_version_each_pair_signed_never_a_mix(
    client: httpx.AsyncClient, world: World
) -> None:
    collab = str(world.collaboration_id)
    # v2 drops language, needs, demographics, safety_plan and adds case_summary.
    version = await propose(
        client,
        world,
        [
            flow("shelter", ["services_referral"], ["identity", "contact", "case_summary"]),
            flow("law_enforcement", ["investigation"], ["identity"]),
        ],
        b"v2 narrower",
        collab,
    )
    every = sorted({*FLOW_CATEGORIES, "case_summary"})
    before = allowed(await explain(client, world, "vsp", "shelter", "services_referral", every))
    assert before == set(FLOW_CATEGORIES)  # v1, the version both signed
    for org in ("vsp", "shelter"):
        assert (await sign(client, world, org, version, collab)).status_code == 201
    after = allowed(await explain(client, world, "vsp", "shelter", "services_referral", every))
    assert after == {"identity", "contact", "case_summary"}  # v2 alone: no v1 category
    # The police did not sign v2: between the VSP and the police v1 stays in force,
    # and v1 has no flow to law enforcement.
    police = await explain(client, world, "vsp", "police", "investigation", ["identity"])
    assert allowed(police) == set()
    assert police["agreements"][0]["version_in_force"] == 1
    # The shelter withdraws: nothing flows between it and the VSP, not even v1.
    assert (await withdraw(client, world, "shelter", collab)).status_code == 200
    gone = await explain(client, world, "vsp", "shelter", "services_referral", every)
    assert allowed(gone) == set()
    assert gone["agreements"][0]["version_in_force"] is None


async def test_signatures_of_another_key_version_or_collaboration_are_refused(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    collab = str(world.collaboration_id)
    v2 = await propose(
        client, world, [flow("law_enforcement", ["investigation"], LE)], b"a", collab
    )
    v3 = await propose(
        client, world, [flow("law_enforcement", ["investigation"], LE)], b"b", collab
    )
    items = {i["version"]: i for i in await history(client, world, "vsp", collab)}
    vsp_key, vsp_seed = world.signing_keys["vsp"]
    _, shelter_seed = world.signing_keys["shelter"]
    shelter_key, _ = world.signing_keys["shelter"]
    url = f"/v1/collaborations/{collab}/agreements/signatures"
    admin = world.headers("vsp", Role.org_admin)
    # A second collaboration with the same members and the same flows.
    other = await client.post(
        "/v1/collaborations",
        json={
            "name": "Another task force",
            "members": [str(world.orgs[o]) for o in ("vsp", "police")],
            "agreement": {
                "flows": [flow("law_enforcement", ["investigation"], LE)],
                "effective_from": items[v2]["effective_from"],
                "document_sha256": items[v2]["document_sha256"],
            },
        },
        headers=world.headers("platform", Role.platform_admin),
    )
    assert other.status_code == 201, other.text
    other_id = other.json()["id"]
    other_v1 = (await history(client, world, "vsp", other_id))[0]

    def by(key_id: str, seed: bytes, item: dict[str, Any], version: int) -> dict[str, Any]:
        """A countersignature of `item`, sent as one of `version`."""
        return {**agreements.countersignature(collab, item, key_id, seed), "version": version}

    cases: dict[str, tuple[str, dict[str, Any]]] = {
        "a key of another organization": (url, by(shelter_key, shelter_seed, items[v2], v2)),
        "right key id, another organization's signature": (
            url,
            {**by(shelter_key, shelter_seed, items[v2], v2), "key_id": vsp_key},
        ),
        "a signature over another version": (url, by(vsp_key, vsp_seed, items[v3], v2)),
        "replayed onto another collaboration": (
            f"/v1/collaborations/{other_id}/agreements/signatures",
            by(vsp_key, vsp_seed, items[v2], 1),
        ),
        "not base64": (url, {"version": v2, "key_id": vsp_key, "signature": "!!"}),
        "too short": (url, {"version": v2, "key_id": vsp_key, "signature": "AAAA"}),
    }
    assert other_v1["members"] == sorted([str(world.orgs["vsp"]), str(world.orgs["police"])])
    before = db.dump()
    for name, (path, body) in cases.items():
        r = await client.post(path, json=body, headers=admin)
        assert r.status_code == 422, (name, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert db.dump() == before
    # The genuine one is accepted, once.
    good = agreements.countersignature(collab, items[v2], vsp_key, vsp_seed)
    assert (await client.post(url, json=good, headers=admin)).status_code == 201
    again = await client.post(url, json=good, headers=admin)
    assert again.status_code == 409


async def test_members_see_the_history_and_non_members_get_404(
    client: httpx.AsyncClient, world: World
) -> None:
    collab = str(world.collaboration_id)
    items = await history(client, world, "police", collab)
    [v1] = items
    assert {s["org_id"] for s in v1["signatures"]} == {
        str(world.orgs[o]) for o in ("vsp", "shelter", "police", "prosecutor")
    }
    assert all(s["withdrawn_at"] is None for s in v1["signatures"])
    for org in ("unrelated", "research"):
        r = await client.get(
            f"/v1/collaborations/{collab}/agreements", headers=world.headers(org, "caseworker")
        )
        assert r.status_code == 404
        signed = await client.post(
            f"/v1/collaborations/{collab}/agreements/signatures",
            json={"version": 1, "key_id": world.signing_keys[org][0], "signature": "A" * 88},
            headers=world.headers(org, Role.org_admin),
        )
        assert signed.status_code == 404


async def test_withdrawal_is_audited_with_the_signature_bytes_and_members_are_told(
    client: httpx.AsyncClient, world: World, app: Any
) -> None:
    collab = str(world.collaboration_id)
    [v1] = await history(client, world, "vsp", collab)
    vsp_signature = next(s for s in v1["signatures"] if s["org_id"] == str(world.orgs["vsp"]))
    r = await withdraw(client, world, "vsp", collab)
    assert r.status_code == 200, r.text
    assert [s["version"] for s in r.json()["items"]] == [1]
    assert (await withdraw(client, world, "vsp", collab)).status_code == 409
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    docs = [json.loads(row.body) for row in rows]
    signed = [d for d in docs if d["action"] == "agreement.signed"]
    assert {s["signature"] for d in signed for s in d["details"]["signatures"]} >= {
        vsp_signature["signature"]
    }
    [withdrawn] = [d for d in docs if d["action"] == "agreement.signature_withdrawn"]
    assert withdrawn["details"]["signatures"][0]["signature"] == vsp_signature["signature"]
    assert len(base64.b64decode(vsp_signature["signature"])) == 64
    events = await client.get("/v1/events", headers=world.headers("police", "caseworker"))
    told = [e for e in events.json()["items"] if e["type"] == "agreement.signature_withdrawn"]
    assert [e["data"]["org_id"] for e in told] == [str(world.orgs["vsp"])]


async def test_a_removed_member_readded_shares_nothing_until_it_signs_again(
    client: httpx.AsyncClient, world: World
) -> None:
    collab = str(world.collaboration_id)
    admin = world.headers("platform", Role.platform_admin)
    every = list(FLOW_CATEGORIES)
    assert allowed(await explain(client, world, "vsp", "shelter", "services_referral", every))
    removed = await client.delete(
        f"/v1/collaborations/{collab}/members/{world.orgs['shelter']}", headers=admin
    )
    assert removed.status_code == 204
    readded = await client.post(
        f"/v1/collaborations/{collab}/members",
        json={"org_id": str(world.orgs["shelter"])},
        headers=admin,
    )
    assert readded.status_code == 201
    back = await explain(client, world, "vsp", "shelter", "services_referral", every)
    assert allowed(back) == set(), "its old signature ended with its membership"
    assert back["agreements"][0]["version_in_force"] is None
    # Version 1 does not list it again: a new version is proposed, and both sign it.
    version = await propose(
        client, world, [flow("shelter", ["services_referral"], every)], b"v2 readded", collab
    )
    for org in ("vsp", "shelter"):
        assert (await sign(client, world, org, version, collab)).status_code == 201
    again = await explain(client, world, "vsp", "shelter", "services_referral", every)
    assert allowed(again) == set(every)
