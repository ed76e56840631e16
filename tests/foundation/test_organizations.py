"""Organizations, the directory, keys (E05/E09/E10), availability, pagination (G06/B14), B13."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.keys import org_public_keys
from tests.support.world import World


async def test_platform_admin_creates_an_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.post(
        "/v1/organizations",
        json={"name": "Clinic", "sector": "healthcare", "jurisdiction": "WA"},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["sector"] == "healthcare"
    assert body["keys"] == {"encryption": None, "signing": None}
    got = await client.get(
        f"/v1/organizations/{body['id']}", headers=world.headers("vsp", Role.caseworker)
    )
    assert got.json()["name"] == "Clinic"


async def test_unknown_sector_is_rejected(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    response = await client.post(
        "/v1/organizations",
        json={"name": "X", "sector": "Shelter"},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "/sector"
    assert db.dump() == before


async def test_keys_registration_and_rotation_keep_history(
    client: httpx.AsyncClient, world: World
) -> None:
    # The world registers every organization's keys first (issue 24: agreements are
    # countersigned); count this test's keys only.
    org = world.orgs["shelter"]
    admin = world.headers("shelter", Role.org_admin)
    seeded = (await client.get(f"/v1/organizations/{org}/keys", headers=admin)).json()["items"]
    first = org_public_keys()
    r1 = await client.put(f"/v1/organizations/{org}/keys", json=first, headers=admin)
    assert r1.status_code == 200
    again = await client.put(f"/v1/organizations/{org}/keys", json=first, headers=admin)
    assert again.json() == r1.json(), "re-sending the current keys is idempotent"
    world.clock.advance(60)
    second = org_public_keys()
    r2 = await client.put(f"/v1/organizations/{org}/keys", json=second, headers=admin)
    assert r2.status_code == 200
    assert r2.json()["signing_key_id"] != r1.json()["signing_key_id"]
    current = (await client.get(f"/v1/organizations/{org}", headers=admin)).json()["keys"]
    assert current["signing"]["public_key"] == second["signing_public_key"]
    history = (await client.get(f"/v1/organizations/{org}/keys", headers=admin)).json()["items"]
    assert len(history) == len(seeded) + 4
    retired = {k["key_id"] for k in history if k["retired_at"] is not None}
    seeded_ids = {k["key_id"] for k in seeded}
    assert retired - seeded_ids == {r1.json()["signing_key_id"], r1.json()["encryption_key_id"]}
    # E05: a retired key cannot be registered again.
    back = await client.put(f"/v1/organizations/{org}/keys", json=first, headers=admin)
    assert back.status_code == 422


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


SMALL_ORDER_X25519 = [
    bytes(32),
    bytes([1] + [0] * 31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
]


def _bad_key_bodies() -> list[tuple[str, dict[str, Any], str]]:
    good = org_public_keys()
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("short", {**good, "encryption_public_key": _b64(b"\x01" * 31)}, "/encryption_public_key"),
        ("long", {**good, "signing_public_key": _b64(b"\x01" * 33)}, "/signing_public_key"),
        ("not-base64", {**good, "signing_public_key": "not base64!"}, "/signing_public_key"),
        (
            "whitespace",
            {
                **good,
                "signing_public_key": good["signing_public_key"][:10]
                + "\n"
                + good["signing_public_key"][10:],
            },
            "/signing_public_key",
        ),
        (
            "not-a-point",
            {**good, "signing_public_key": _b64(bytes.fromhex("02" + "ff" * 31))},
            "/signing_public_key",
        ),
        (
            "same-bytes",
            {**good, "encryption_public_key": good["signing_public_key"]},
            "/signing_public_key",
        ),
    ]
    for index, raw in enumerate(SMALL_ORDER_X25519):
        cases.append(
            (
                f"small-order-{index}",
                {**good, "encryption_public_key": _b64(raw)},
                "/encryption_public_key",
            )
        )
    cases.append(
        (
            "ed25519-identity",
            {**good, "signing_public_key": _b64(bytes([1] + [0] * 31))},
            "/signing_public_key",
        )
    )
    return cases


@pytest.mark.security
@pytest.mark.parametrize(
    ("name", "body", "path"), _bad_key_bodies(), ids=[c[0] for c in _bad_key_bodies()]
)
async def test_E09_E10_invalid_keys_rejected_naming_the_field(
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    name: str,
    body: dict[str, Any],
    path: str,
) -> None:
    before = db.dump()
    response = await client.put(
        f"/v1/organizations/{world.orgs['vsp']}/keys",
        json=body,
        headers=world.headers("vsp", Role.org_admin),
    )
    assert response.status_code == 422, name
    assert path in {e["path"] for e in response.json()["errors"]}
    assert db.dump() == before


@pytest.mark.security
async def test_E10_key_of_another_organization_rejected(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    keys = org_public_keys()
    assert (
        await client.put(
            f"/v1/organizations/{world.orgs['vsp']}/keys",
            json=keys,
            headers=world.headers("vsp", Role.org_admin),
        )
    ).status_code == 200
    before = db.dump()
    response = await client.put(
        f"/v1/organizations/{world.orgs['shelter']}/keys",
        json=keys,
        headers=world.headers("shelter", Role.org_admin),
    )
    assert response.status_code == 422
    assert db.dump() == before


async def test_availability_is_published_in_the_directory(
    client: httpx.AsyncClient, world: World
) -> None:
    body = {
        "accepting_referrals": True,
        "capacity": 4,
        "hours": "24/7",
        "languages": ["en", "es-MX"],
        "services": ["emergency_shelter", "counseling"],
        "populations": ["adults", "women"],
    }
    r = await client.put(
        f"/v1/organizations/{world.orgs['shelter']}/availability",
        json=body,
        headers=world.headers("shelter", Role.supervisor),
    )
    assert r.status_code == 200
    police = world.headers("police", Role.investigator)
    found = (
        await client.get(
            "/v1/organizations?service=emergency_shelter&language=es-MX&accepting=true",
            headers=police,
        )
    ).json()["items"]
    assert [o["id"] for o in found] == [str(world.orgs["shelter"])]
    assert found[0]["availability"]["hours"] == "24/7"
    none = (await client.get("/v1/organizations?service=legal_aid", headers=police)).json()["items"]
    assert none == []
    sector = (await client.get("/v1/organizations?sector=shelter", headers=police)).json()["items"]
    assert [o["id"] for o in sector] == [str(world.orgs["shelter"])]


LOCATION_WORDS = (
    "address",
    "street",
    "latitude",
    "longitude",
    "coordinates",
    "location",
    "geo",
    "staff",
)


@pytest.mark.security
@pytest.mark.parametrize(
    "query",
    [
        "",
        "?sector=shelter",
        "?accepting=true",
        "?service=emergency_shelter",
        "?language=en",
        "?sector=shelter&accepting=false",
    ],
)
async def test_B13_directory_has_no_location_and_is_the_same_for_everyone(
    client: httpx.AsyncClient, world: World, query: str
) -> None:
    as_police = await client.get(
        f"/v1/organizations{query}", headers=world.headers("police", Role.investigator)
    )
    as_vsp = await client.get(
        f"/v1/organizations{query}", headers=world.headers("vsp", Role.caseworker)
    )
    assert as_police.status_code == as_vsp.status_code == 200
    assert as_police.json() == as_vsp.json()
    text = as_police.text.lower()
    for word in LOCATION_WORDS:
        assert f'"{word}' not in text


async def test_G06_pagination_caps_and_walks(client: httpx.AsyncClient, world: World) -> None:
    headers = world.headers("vsp", Role.caseworker)
    for bad in ("0", "-1", "1000000000", "abc", "201"):
        assert (
            await client.get(f"/v1/organizations?limit={bad}", headers=headers)
        ).status_code == 422, bad
    seen: list[str] = []
    url = "/v1/organizations?limit=3"
    for _ in range(10):
        page = (await client.get(url, headers=headers)).json()
        assert len(page["items"]) <= 3
        seen += [o["id"] for o in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/v1/organizations?limit=3&cursor={page['next_cursor']}"
    assert sorted(seen) == sorted(str(v) for v in world.orgs.values())
    assert len(seen) == len(set(seen))


@pytest.mark.security
async def test_B14_cursor_tampering_and_replay(client: httpx.AsyncClient, world: World) -> None:
    mine = world.headers("vsp", Role.caseworker)
    page = (await client.get("/v1/organizations?limit=2", headers=mine)).json()
    cursor = page["next_cursor"]
    assert cursor
    body, mac = cursor.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    assert (
        await client.get(f"/v1/organizations?limit=2&cursor={tampered}", headers=mine)
    ).status_code == 400
    other = world.headers("shelter", Role.caseworker, sub="bob")
    assert (
        await client.get(f"/v1/organizations?limit=2&cursor={cursor}", headers=other)
    ).status_code == 400
    filtered = f"/v1/organizations?limit=2&sector=shelter&cursor={cursor}"
    assert (await client.get(filtered, headers=mine)).status_code == 400
    assert (
        await client.get(f"/v1/organizations?limit=2&cursor={cursor}", headers=mine)
    ).status_code == 200
