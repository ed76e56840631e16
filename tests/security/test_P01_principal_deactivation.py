"""P01 (docs/threat-model.md; next to SECURITY-TESTS A14): a departed member of staff
is cut off on the very next request on every app node, with a development token and
with an identity provider's token alike; one token can be revoked by its `jti`; the
admin sees who was seen when; every change is audited."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.clock import FrozenClock
from tests.security.people import idp_node
from tests.support.databases import TestDatabase
from tests.support.world import World


async def _entries(app: object, action: str) -> list[dict[str, object]]:
    async with app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        rows = (await session.scalars(select(AuditEntry).where(AuditEntry.action == action))).all()
    return [json.loads(row.body) for row in rows]


async def test_P01_deactivation_holds_on_the_next_request_on_every_node(
    app: object,
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    key_dir: Path,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    vsp = world.orgs["vsp"]
    admin = world.headers("vsp", Role.org_admin, sub="admin")
    dev_bob = world.headers("vsp", Role.caseworker, sub="bob")
    async with idp_node(db, key_dir, clock, tmp_path) as node_b:
        idp_bob = node_b.headers(vsp, ["caseworker"], "bob")
        # Both work before, each on its own node.
        assert (await client.get("/v1/organizations", headers=dev_bob)).status_code == 200
        assert (await node_b.http.get("/v1/organizations", headers=idp_bob)).status_code == 200

        clock.advance(120)
        listed = await client.get(f"/v1/organizations/{vsp}/principals", headers=admin)
        assert listed.status_code == 200, listed.text
        bob = next(p for p in listed.json()["items"] if p["subject"] == "bob")
        assert bob["active"] is True
        assert bob["last_seen_at"] is not None

        r = await client.post(
            f"/v1/organizations/{vsp}/principals/deactivate",
            json={"subject": "bob"},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        assert r.json()["active"] is False
        # The very next request, on this node and on the other, with either token.
        assert (await client.get("/v1/organizations", headers=dev_bob)).status_code == 401
        assert (await node_b.http.get("/v1/organizations", headers=idp_bob)).status_code == 401
        fresh = node_b.headers(vsp, ["caseworker"], "bob")
        assert (await node_b.http.get("/v1/organizations", headers=fresh)).status_code == 401
        # A colleague continues, with the organization's keys untouched.
        colleague = world.headers("vsp", Role.caseworker, sub="carol")
        assert (await client.get("/v1/organizations", headers=colleague)).status_code == 200

        r = await node_b.http.post(
            f"/v1/organizations/{vsp}/principals/reactivate",
            json={"subject": "bob"},
            headers=node_b.headers(vsp, ["org_admin"], "admin"),
        )
        assert r.status_code == 200, r.text
        assert (await client.get("/v1/organizations", headers=dev_bob)).status_code == 200

    deactivated = await _entries(app, "principal.deactivated")
    assert [e["details"] for e in deactivated] == [{"subject": "bob"}]
    assert deactivated[0]["actor"]["principal"] == "admin"  # type: ignore[index]
    assert len(await _entries(app, "principal.reactivated")) == 1


async def test_P01_one_token_is_revoked_by_its_jti_and_the_others_stand(
    app: object, client: httpx.AsyncClient, world: World
) -> None:
    vsp = world.orgs["vsp"]
    admin = world.headers("vsp", Role.org_admin, sub="admin")
    lost = world.tokens.mint(vsp, [Role.caseworker], "bob")
    kept = world.tokens.mint(vsp, [Role.caseworker], "bob")
    assert (
        await client.get("/v1/organizations", headers={"Authorization": f"Bearer {lost}"})
    ).status_code == 200
    listed = await client.get(f"/v1/organizations/{vsp}/principals", headers=admin)
    bob = next(p for p in listed.json()["items"] if p["subject"] == "bob")
    assert bob["last_token_id"]
    r = await client.post(
        f"/v1/organizations/{vsp}/revoked-tokens", json={"jti": bob["last_token_id"]}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert (
        await client.get("/v1/organizations", headers={"Authorization": f"Bearer {lost}"})
    ).status_code == 401
    assert (
        await client.get("/v1/organizations", headers={"Authorization": f"Bearer {kept}"})
    ).status_code == 200
    again = await client.post(
        f"/v1/organizations/{vsp}/revoked-tokens", json={"jti": bob["last_token_id"]}, headers=admin
    )
    assert again.status_code == 200
    assert [e["details"] for e in await _entries(app, "token.revoked")] == [
        {"jti": bob["last_token_id"]}
    ]


async def test_P01_only_the_organizations_own_admin_and_never_itself(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    vsp = world.orgs["vsp"]
    before = db.dump()
    body = {"subject": "bob"}
    deactivate = f"/v1/organizations/{vsp}/principals/deactivate"
    for headers, status in (
        (world.headers("vsp", Role.caseworker), 403),
        (world.headers("vsp", Role.supervisor), 403),
        (world.headers("shelter", Role.org_admin), 404),
        (world.headers("platform", Role.platform_admin), 404),
    ):
        assert (await client.post(deactivate, json=body, headers=headers)).status_code == status
        assert (
            await client.get(f"/v1/organizations/{vsp}/principals", headers=headers)
        ).status_code == status
        assert (
            await client.post(
                f"/v1/organizations/{vsp}/revoked-tokens", json={"jti": "x"}, headers=headers
            )
        ).status_code == status
    admin = world.headers("vsp", Role.org_admin, sub="admin")
    itself = await client.post(deactivate, json={"subject": "admin"}, headers=admin)
    assert itself.status_code == 422
    for bad in ({"subject": ""}, {"subject": "a\x00b"}, {"subject": "x" * 256}, {}):
        assert (await client.post(deactivate, json=bad, headers=admin)).status_code == 422
    assert db.dump() == before


async def test_P01_a_principal_never_seen_can_be_cut_off_before_its_first_request(
    client: httpx.AsyncClient, world: World
) -> None:
    vsp = world.orgs["vsp"]
    admin = world.headers("vsp", Role.org_admin, sub="admin")
    r = await client.post(
        f"/v1/organizations/{vsp}/principals/deactivate", json={"subject": "dave"}, headers=admin
    )
    assert r.status_code == 200
    assert r.json()["last_seen_at"] is None
    dave = world.headers("vsp", Role.caseworker, sub="dave")
    assert (await client.get("/v1/organizations", headers=dave)).status_code == 401
    # The same subject in another organization is another principal.
    other = world.headers("shelter", Role.caseworker, sub="dave")
    assert (await client.get("/v1/organizations", headers=other)).status_code == 200
