"""Subjects: random ids owned by the caller's organization; others get 404 (O-same404)."""

from __future__ import annotations

import httpx

from service.auth.principals import Role
from tests.support.world import World


async def test_subject_is_owned_by_the_callers_organization(
    client: httpx.AsyncClient, world: World
) -> None:
    r = await client.post(
        "/v1/subjects", json={"is_minor": True}, headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 201
    body = r.json()
    assert body["owner_org_id"] == str(world.orgs["vsp"])
    assert body["is_minor"] is True
    assert set(body) == {"id", "owner_org_id", "is_minor", "created_at"}
    own = await client.get(
        f"/v1/subjects/{body['id']}", headers=world.headers("vsp", Role.supervisor)
    )
    assert own.status_code == 200
    other = await client.get(
        f"/v1/subjects/{body['id']}", headers=world.headers("shelter", Role.caseworker)
    )
    absent = await client.get(
        "/v1/subjects/00000000-0000-4000-8000-000000000001",
        headers=world.headers("shelter", Role.caseworker),
    )
    assert other.status_code == absent.status_code == 404
    assert other.json() == absent.json()


async def test_subject_without_body_defaults(client: httpx.AsyncClient, world: World) -> None:
    r = await client.post("/v1/subjects", headers=world.headers("vsp", Role.supervisor))
    assert r.status_code == 201
    assert r.json()["is_minor"] is False
