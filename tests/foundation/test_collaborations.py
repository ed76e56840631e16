"""Collaborations: agreements versioned, membership ends at once, visibility (B16), C04."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.world import World


def _agreement(world: World, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "flows": [
            {
                "from_sector": "victim_services",
                "to_sector": "shelter",
                "purposes": ["services_referral"],
                "categories": ["contact", "needs"],
            }
        ],
        "effective_from": (world.clock.now() - timedelta(days=1)).isoformat(),
        "effective_to": (world.clock.now() + timedelta(days=30)).isoformat(),
        "document_sha256": hashlib.sha256(b"mou").hexdigest(),
    }
    body.update(overrides)
    return body


async def test_agreement_amendment_keeps_every_version(
    client: httpx.AsyncClient, world: World
) -> None:
    admin = world.headers("platform", Role.platform_admin)
    cid = world.collaboration_id
    amended = _agreement(world, document_sha256=hashlib.sha256(b"v2").hexdigest())
    r = await client.put(f"/v1/collaborations/{cid}/agreement", json=amended, headers=admin)
    assert r.status_code == 200
    assert r.json()["agreement"]["version"] == 2
    history = (
        await client.get(
            f"/v1/collaborations/{cid}/agreements", headers=world.headers("vsp", Role.caseworker)
        )
    ).json()["items"]
    assert [v["version"] for v in history] == [2, 1]
    assert history[1]["flows"][0]["categories"] != history[0]["flows"][0]["categories"]


async def test_member_removal_ends_access_at_once(client: httpx.AsyncClient, world: World) -> None:
    cid = world.collaboration_id
    police = world.headers("police", Role.investigator)
    assert (await client.get(f"/v1/collaborations/{cid}", headers=police)).status_code == 200
    r = await client.delete(
        f"/v1/collaborations/{cid}/members/{world.orgs['police']}",
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 204
    assert (await client.get(f"/v1/collaborations/{cid}", headers=police)).status_code == 404
    listed = (await client.get("/v1/collaborations", headers=police)).json()["items"]
    assert listed == []
    again = await client.delete(
        f"/v1/collaborations/{cid}/members/{world.orgs['police']}",
        headers=world.headers("platform", Role.platform_admin),
    )
    assert again.status_code == 404


async def test_adding_a_member_twice_conflicts(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    cid = world.collaboration_id
    admin = world.headers("platform", Role.platform_admin)
    before = db.dump()
    r = await client.post(
        f"/v1/collaborations/{cid}/members", json={"org_id": str(world.orgs["vsp"])}, headers=admin
    )
    assert r.status_code == 409
    assert db.dump() == before


@pytest.mark.security
async def test_B16_non_member_gets_404_members_see_agreement(
    client: httpx.AsyncClient, world: World
) -> None:
    cid = world.collaboration_id
    outsider = world.headers("unrelated", Role.supervisor)
    member = world.headers("shelter", Role.caseworker)
    missing = "00000000-0000-4000-8000-000000000000"
    hidden = await client.get(f"/v1/collaborations/{cid}", headers=outsider)
    absent = await client.get(f"/v1/collaborations/{missing}", headers=outsider)
    assert hidden.status_code == absent.status_code == 404
    assert hidden.json() == absent.json()  # O-same404 (body)
    seen = (await client.get(f"/v1/collaborations/{cid}", headers=member)).json()
    assert set(seen) == {"id", "name", "created_at", "agreement", "members"}
    assert (await client.get("/v1/collaborations", headers=outsider)).json()["items"] == []


@pytest.mark.security
@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("categories", "Counseling_Notes"),
        ("categories", "contact "),
        ("categories", "con\u200btact"),
        ("categories", "\u0441ontact"),  # Cyrillic es
        ("purposes", "Services_Referral"),
        ("purposes", "services_referral\u0301"),
        ("categories", ""),
    ],
)
async def test_C04_spelling_games_in_agreements_are_unknown(
    client: httpx.AsyncClient, world: World, db: TestDatabase, where: str, value: str
) -> None:
    flow = {
        "from_sector": "victim_services",
        "to_sector": "shelter",
        "purposes": ["services_referral"],
        "categories": ["contact"],
    }
    flow[where] = [value]
    before = db.dump()
    r = await client.post(
        "/v1/collaborations",
        json={"name": "T", "agreement": _agreement(world, flows=[flow])},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 422
    assert any(e["path"].startswith(f"/agreement/flows/0/{where}") for e in r.json()["errors"])
    assert db.dump() == before


@pytest.mark.parametrize(
    ("override", "path"),
    [
        ({"flows": []}, "/agreement/flows"),
        ({"document_sha256": "ABC"}, "/agreement/document_sha256"),
        ({"effective_from": "2026-01-01T00:00:00"}, "/agreement/effective_from"),
    ],
)
async def test_invalid_agreements_name_the_rule(
    client: httpx.AsyncClient, world: World, db: TestDatabase, override: dict[str, Any], path: str
) -> None:
    before = db.dump()
    r = await client.post(
        "/v1/collaborations",
        json={"name": "T", "agreement": _agreement(world, **override)},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 422
    assert path in {e["path"] for e in r.json()["errors"]}
    assert db.dump() == before


async def test_empty_flow_lists_are_rejected_not_wildcards(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    flow = {
        "from_sector": "victim_services",
        "to_sector": "shelter",
        "purposes": [],
        "categories": [],
    }
    before = db.dump()
    r = await client.post(
        "/v1/collaborations",
        json={"name": "T", "agreement": _agreement(world, flows=[flow])},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 422
    assert {"/agreement/flows/0/purposes", "/agreement/flows/0/categories"} <= {
        e["path"] for e in r.json()["errors"]
    }
    assert db.dump() == before


async def test_effective_window_must_be_ordered(client: httpx.AsyncClient, world: World) -> None:
    now = world.clock.now()
    body = _agreement(
        world, effective_from=now.isoformat(), effective_to=(now - timedelta(days=1)).isoformat()
    )
    r = await client.post(
        "/v1/collaborations",
        json={"name": "T", "agreement": body},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["path"] == "/agreement/effective_to"
