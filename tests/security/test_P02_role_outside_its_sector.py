"""P02 (docs/threat-model.md; next to SECURITY-TESTS A18): a role claimed outside the
sectors it belongs to grants nothing, and the refusal is a 403, with a development
token and with an identity provider's token alike."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from service.auth.principals import ROLE_SECTORS, Role, roles_from_claim
from service.clock import FrozenClock
from service.sectors import Sector
from tests.records_requests.support import make_request_kit
from tests.security.people import idp_node
from tests.support.databases import TestDatabase
from tests.support.world import World


def test_P02_the_table_covers_every_role_and_keeps_requesters_to_their_sector() -> None:
    assert set(ROLE_SECTORS) == set(Role)
    assert ROLE_SECTORS[Role.investigator] == {Sector.law_enforcement}
    assert ROLE_SECTORS[Role.prosecutor] == {Sector.prosecution}
    assert Sector.research not in ROLE_SECTORS[Role.caseworker]
    assert roles_from_claim(["investigator", "caseworker"], Sector.victim_services) == {
        Role.caseworker
    }
    assert roles_from_claim(["investigator"], Sector.law_enforcement) == {Role.investigator}


async def test_P02_an_investigator_claim_at_a_victim_service_requests_nothing(
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    key_dir: Path,
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    kit = await make_request_kit(client, world)
    async with idp_node(db, key_dir, clock, tmp_path) as node_b:
        before = db.dump()
        for org, roles in (("vsp", ["investigator"]), ("shelter", ["prosecutor"])):
            dev = world.headers(org, *roles)
            idp = node_b.headers(world.orgs[org], roles, "mallory")
            r = await client.post("/v1/records-requests", json=kit.body(), headers=dev)
            assert r.status_code == 403, r.text
            r = await node_b.http.post("/v1/records-requests", json=kit.body(), headers=idp)
            assert r.status_code == 403, r.text
        assert db.dump() == before
        # The same claim in its own sector still works, from either source.
        police = world.orgs["police"]
        r = await node_b.http.post(
            "/v1/records-requests",
            json=kit.body(),
            headers=node_b.headers(police, ["investigator"], "ivy"),
        )
        assert r.status_code == 201, r.text
    assert (await kit.request("police")).status_code == 201


@pytest.mark.parametrize(
    ("org", "role", "method", "path"),
    [
        ("vsp", Role.platform_admin, "POST", "/v1/organizations"),
        ("research", Role.caseworker, "POST", "/v1/subjects"),
        ("oversight", Role.supervisor, "GET", "/v1/reviews"),
    ],
)
async def test_P02_other_roles_outside_their_sector_are_403(
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    org: str,
    role: Role,
    method: str,
    path: str,
) -> None:
    before = db.dump()
    body = {"name": "N", "sector": "healthcare"} if path == "/v1/organizations" else {}
    r = await client.request(
        method, path, json=body if method == "POST" else None, headers=world.headers(org, role)
    )
    assert r.status_code == 403, r.text
    assert db.dump() == before
