"""G07: rate limits with the shipped defaults (service/settings.py), on both engines.
A refused request is 429 with Retry-After, arrives well before 1,000 requests, and
stores nothing. Records requests are covered in tests/records_requests/."""

from __future__ import annotations

import httpx
import pytest

from service.auth.principals import Role
from service.settings import Settings
from tests.support.databases import TestDatabase
from tests.support.factories import new_subject
from tests.support.world import World

BAD = {"Authorization": "Bearer not-a-token"}


def _limit(text: str) -> int:
    return int(text.split("/")[0])


async def test_G07_bad_tokens_from_one_client_get_429_before_a_thousand(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    allowed = _limit(Settings().rate_limit_failed_auth)
    assert allowed < 500
    before = db.dump()
    statuses = []
    for _ in range(allowed + 20):
        r = await client.get("/v1/organizations", headers=BAD)
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.headers["content-type"] == "application/problem+json"
    assert statuses[:allowed] == [401] * allowed
    assert set(statuses[allowed:]) == {429}
    # A valid token from the same address still works: a noisy client cannot lock
    # out its colleagues.
    ok = await client.get("/v1/organizations", headers=world.headers("vsp", Role.caseworker))
    assert ok.status_code == 200
    assert db.dump() == before


async def test_G07_access_links_per_principal_then_429_and_nothing_stored(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    allowed = _limit(Settings().rate_limit_access_links)
    subject = await new_subject(client, world)
    staff = world.headers("vsp", Role.caseworker)
    for _ in range(allowed):
        r = await client.post(f"/v1/subjects/{subject}/access-links", json={}, headers=staff)
        assert r.status_code == 201, r.text
    before = db.dump()
    refused = await client.post(f"/v1/subjects/{subject}/access-links", json={}, headers=staff)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert db.dump() == before
    # Another principal has its own allowance.
    other = world.headers("vsp", Role.caseworker, sub="bob")
    r = await client.post(f"/v1/subjects/{subject}/access-links", json={}, headers=other)
    assert r.status_code == 201, r.text


def test_G07_a_malformed_limit_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        Settings(rate_limit_records_requests="lots")
