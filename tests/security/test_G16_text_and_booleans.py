"""G16 (docs/threat-model.md "Input rules"): every text field refuses control
characters and lone surrogates, and every boolean is a JSON boolean. Before, a NUL in
an organization's name was a 500 on PostgreSQL and stored and shown in the public
directory on SQLite; tabs and carriage returns were accepted; `{"is_minor": 0}` was
read as false. Each refusal is a 422 naming the field, on both engines, and changes
nothing (O-unchanged). Line breaks stay allowed in the fields that are multi-line
text (a revocation's reason, a justification, a note, an organization's rules)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World

pytestmark = pytest.mark.security

BAD_TEXT = {
    "NUL": "Shelter\u0000 north",
    "tab": "Shelter\tnorth",
    "carriage return": "Shelter\rnorth",
    "escape": "Shelter\u001b[2J",
    "C1 control": "Shelter\u0085north",
    "line break in a one-line field": "Shelter\nnorth",
}


def problem_paths(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [str(e.get("path", "")) for e in response.json()["errors"]]


@pytest.mark.parametrize("case", sorted(BAD_TEXT))
async def test_G16_control_characters_in_organization_text_are_refused(
    client: httpx.AsyncClient, world: World, db: TestDatabase, case: str
) -> None:
    before = db.dump()
    r = await client.post(
        "/v1/organizations",
        json={"name": BAD_TEXT[case], "sector": "shelter", "jurisdiction": f"US{BAD_TEXT[case]}"},
        headers=world.headers("platform", Role.platform_admin),
    )
    paths = problem_paths(r)
    assert any("name" in p for p in paths), paths
    assert any("jurisdiction" in p for p in paths), paths  # each problem is listed
    assert "\u0000" not in r.text
    assert db.dump() == before


async def test_G16_a_lone_surrogate_is_refused(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    # Written by hand: a JSON encoder would refuse to produce it.
    body = '{"name": "Shelter \\ud800 north", "sector": "shelter"}'
    r = await client.post(
        "/v1/organizations",
        content=body.encode(),
        headers={
            **world.headers("platform", Role.platform_admin),
            "content-type": "application/json",
        },
    )
    assert r.status_code in (400, 422), r.text
    assert db.dump() == before


async def test_G16_multiline_free_text_keeps_line_breaks_but_not_nul(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    _, consent = await new_consent(client, world)
    headers = world.headers("vsp", Role.caseworker)
    before = db.dump()
    r = await client.post(
        f"/v1/consents/{consent['id']}/revoke",
        json={"reason": "asked by phone\u0000"},
        headers=headers,
    )
    assert any("reason" in p for p in problem_paths(r))
    assert db.dump() == before
    r = await client.post(
        f"/v1/consents/{consent['id']}/revoke",
        json={"reason": "asked by phone\nthen in writing"},
        headers=headers,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", [0, "true", []])
async def test_G16_booleans_must_be_json_booleans(
    client: httpx.AsyncClient, world: World, db: TestDatabase, value: Any
) -> None:
    before = db.dump()
    r = await client.post(
        "/v1/subjects",
        content=json.dumps({"is_minor": value}).encode(),
        headers={
            **world.headers("vsp", Role.caseworker),
            "content-type": "application/json",
        },
    )
    assert any("is_minor" in p for p in problem_paths(r))
    assert db.dump() == before
    r = await client.put(
        f"/v1/organizations/{world.orgs['shelter']}/availability",
        json={
            "accepting_referrals": value,
            "hours": "24/7",
            "languages": ["en"],
            "services": [],
            "populations": [],
        },
        headers=world.headers("shelter", Role.org_admin),
    )
    assert any("accepting_referrals" in p for p in problem_paths(r))
    assert db.dump() == before


async def test_G16_json_booleans_are_accepted(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post(
        "/v1/subjects", json={"is_minor": True}, headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 201, r.text
    assert r.json()["is_minor"] is True
