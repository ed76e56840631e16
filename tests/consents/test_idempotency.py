"""Idempotency-Key on subject and consent creates (D12's rule for every create a
client retries): the same key and body return the first result (200), never a
second object; the same key with another body is a 422 and stores nothing; keys
are scoped to the organization; concurrent retries make one object."""

from __future__ import annotations

import asyncio

import httpx

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_consent, new_subject
from tests.support.world import World


async def test_subject_create_is_idempotent_per_key(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    headers = {**world.headers("vsp", Role.caseworker), "Idempotency-Key": "subject-1"}
    first = await client.post("/v1/subjects", json={}, headers=headers)
    assert first.status_code == 201
    before = db.dump()
    again = await client.post("/v1/subjects", json={}, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    other_body = await client.post("/v1/subjects", json={"is_minor": True}, headers=headers)
    assert other_body.status_code == 422
    assert other_body.json()["errors"][0]["path"] == "header:/Idempotency-Key"
    assert db.dump() == before
    # Another organization's identical key is its own.
    theirs = {**world.headers("shelter", Role.caseworker), "Idempotency-Key": "subject-1"}
    r = await client.post("/v1/subjects", json={}, headers=theirs)
    assert r.status_code == 201
    assert r.json()["id"] != first.json()["id"]


async def test_consent_create_is_idempotent_and_concurrent_retries_make_one(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject = await new_subject(client, world)
    url = f"/v1/subjects/{subject}/consents"
    headers = {**world.headers("vsp", Role.caseworker), "Idempotency-Key": "grant-7"}
    body = grant_body(world)
    first, second = await asyncio.gather(
        client.post(url, json=body, headers=headers),
        client.post(url, json=body, headers=headers),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    listed = await client.get(url, headers=world.headers("vsp", Role.caseworker))
    assert [c["id"] for c in listed.json()["items"]] == [first.json()["id"]]
    before = db.dump()
    changed = await client.post(url, json={**body, "language": "en"}, headers=headers)
    assert changed.status_code == 422
    assert db.dump() == before
    # The same key on another subject's consents is another request: refused too.
    elsewhere = await new_subject(client, world)
    before = db.dump()
    r = await client.post(f"/v1/subjects/{elsewhere}/consents", json=body, headers=headers)
    assert r.status_code == 422
    assert db.dump() == before


async def test_an_amendment_with_a_key_is_idempotent(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    """An amendment is a change a release reads (the policy lock exclusively): with an
    Idempotency-Key the key's check takes the lock in that mode first, then the key's
    lock (service/idempotency/service.py), and a retry returns the first version."""
    subject, grant = await new_consent(client, world)
    url = f"/v1/subjects/{subject}/consents"
    headers = {**world.headers("vsp", Role.caseworker), "Idempotency-Key": "amend-1"}
    body = grant_body(world, supersedes=grant["id"], language="en")
    first = await client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 2
    before = db.dump()
    again = await client.post(url, json=body, headers=headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert db.dump() == before
