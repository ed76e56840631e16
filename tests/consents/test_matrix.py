"""B01/B04 for the consent routes (they need a subject and a grant to exist, so they sit
in COVERED_ELSEWHERE of the main table): every route x every role x {the owner, a
recipient named in the grant, an unrelated organization} x no token, exact status.
Denied cells leave the database unchanged (O-unchanged) and answer problem+json."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_consent
from tests.support.world import World

CASE = (Role.caseworker, Role.supervisor)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    success: int
    body: Callable[[World], Any] | None = None


ROUTES = (
    Route("POST", "/v1/subjects/{subject_id}/consents", 201, grant_body),
    Route("GET", "/v1/subjects/{subject_id}/consents", 200),
    Route("GET", "/v1/consents/{consent_id}", 200),
    Route("POST", "/v1/consents/{consent_id}/revoke", 200, lambda w: {"reason": "withdrawn"}),
    Route("GET", "/v1/consents/{consent_id}/receipt", 200),
    Route("GET", "/v1/consents/{consent_id}/fhir", 200),
    Route("POST", "/v1/subjects/{subject_id}/access-links", 201, lambda w: {}),
    Route(
        "POST",
        "/v1/subjects/{subject_id}/alleged-abusers",
        201,
        lambda w: {"person_ref": "ef" * 32},
    ),
)


def _expected(route: Route, role: Role, caller: str) -> int:
    # The role check comes first (as in the main table): a role that may never use
    # the route learns nothing from it; then another organization's object is 404.
    if role not in CASE:
        return 403
    return route.success if caller == "vsp" else 404


@pytest.mark.security
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.template}")
async def test_B01_consent_routes_matrix(
    route: Route, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject, consent = await new_consent(client, world)  # owned by "vsp", names "shelter"
    path = route.template.format(subject_id=subject, consent_id=consent["id"])
    body = route.body(world) if route.body else None
    cells = [(role, caller) for role in Role for caller in ("vsp", "shelter", "unrelated")]
    cells.sort(key=lambda cell: _expected(route, *cell) < 400)  # denied cells first
    before = db.dump()
    checked = False
    wrong = []
    for role, caller in cells:
        expected = _expected(route, role, caller)
        if expected < 400 and not checked:
            assert db.dump() == before, "a denied request changed the database"
            checked = True
        r = await client.request(route.method, path, json=body, headers=world.headers(caller, role))
        if r.status_code != expected:
            wrong.append((role.value, caller, expected, r.status_code))
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")
    assert not wrong, f"(role, caller, expected, got): {wrong}"
    before = db.dump()
    anonymous = await client.request(route.method, path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert db.dump() == before


async def test_B04_a_hidden_consent_answers_like_a_missing_one(
    client: httpx.AsyncClient, world: World
) -> None:
    """O-same404: the recipient named in the grant gets the same 404 as for a random id."""
    _, consent = await new_consent(client, world)
    headers = world.headers("shelter", Role.caseworker)
    for suffix in ("", "/receipt", "/fhir"):
        hidden = await client.get(f"/v1/consents/{consent['id']}{suffix}", headers=headers)
        missing = await client.get(
            f"/v1/consents/00000000-0000-4000-8000-000000000009{suffix}", headers=headers
        )
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json() == missing.json()
