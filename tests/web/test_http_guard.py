"""The request guard and error hygiene: G01, G03, G04, B10, B11, G12, G14, A19."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from service.web.middleware import app_routes
from tests.support.databases import TestDatabase
from tests.support.world import World

pytestmark = pytest.mark.security


async def test_G01_declared_body_over_limit_is_413_before_reading(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    body = b'{"name": "' + b"x" * (10 * 1024 * 1024) + b'", "sector": "healthcare"}'
    response = await client.post(
        "/v1/organizations",
        content=body,
        headers={
            **world.headers("platform", Role.platform_admin),
            "content-type": "application/json",
        },
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert db.dump() == before


async def test_G01_streamed_body_without_length_is_counted(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    async def chunks() -> Any:
        yield b'{"name": "'
        for _ in range(20):
            yield b"y" * 100_000
        yield b'", "sector": "healthcare"}'

    before = db.dump()
    response = await client.post(
        "/v1/organizations",
        content=chunks(),
        headers={
            **world.headers("platform", Role.platform_admin),
            "content-type": "application/json",
        },
    )
    assert response.status_code == 413
    assert db.dump() == before


@pytest.mark.parametrize(
    ("content_type", "body", "status"),
    [
        ("application/json", b'{"name": "x", ', 400),
        ("application/json", b'{"name": "a", "name": "b", "sector": "healthcare"}', 400),
        ("application/json", b'{"name": "x", "sector": "healthcare", "capacity": NaN}', 400),
        ("text/plain", b'{"name": "x", "sector": "healthcare"}', 415),
        ("application/x-www-form-urlencoded", b"name=x&sector=healthcare", 415),
        (
            "multipart/form-data; boundary=b",
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--',
            415,
        ),
    ],
)
async def test_G03_media_types_and_malformed_json(
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    content_type: str,
    body: bytes,
    status: int,
) -> None:
    before = db.dump()
    response = await client.post(
        "/v1/organizations",
        content=body,
        headers={**world.headers("platform", Role.platform_admin), "content-type": content_type},
    )
    assert response.status_code == status
    assert response.json()["status"] == status
    assert db.dump() == before


async def test_G04_unknown_properties_at_depth_name_the_path(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    body = {
        "name": "T",
        "agreement": {
            "flows": [
                {
                    "from_sector": "victim_services",
                    "to_sector": "shelter",
                    "purposes": ["services_referral"],
                    "categories": ["contact"],
                    "x": 1,
                }
            ],
            "effective_from": "2026-01-01T00:00:00Z",
            "document_sha256": "0" * 64,
        },
    }
    response = await client.post(
        "/v1/collaborations", json=body, headers=world.headers("platform", Role.platform_admin)
    )
    assert response.status_code == 422
    paths = [e["path"] for e in response.json()["errors"]]
    assert "/agreement/flows/0/x" in paths
    assert db.dump() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/organizations",
            {"name": "N", "sector": "healthcare", "id": "00000000-0000-0000-0000-000000000001"},
        ),
        ("/v1/organizations", {"name": "N", "sector": "healthcare", "active": False}),
        ("/v1/subjects", {"owner_org": "00000000-0000-0000-0000-000000000001"}),
    ],
)
async def test_B11_mass_assignment_rejected(
    client: httpx.AsyncClient, world: World, db: TestDatabase, path: str, body: dict[str, Any]
) -> None:
    before = db.dump()
    headers = world.headers("platform", Role.platform_admin, Role.caseworker)
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code == 422
    assert any(e["message"] == "unknown property" for e in response.json()["errors"])
    assert db.dump() == before


async def test_B11_availability_cannot_set_sector_or_address(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    body = {
        "accepting_referrals": True,
        "hours": "24/7",
        "languages": [],
        "services": [],
        "populations": [],
        "sector": "law_enforcement",
        "address": "1 Main St",
    }
    response = await client.put(
        f"/v1/organizations/{world.orgs['shelter']}/availability",
        json=body,
        headers=world.headers("shelter", Role.org_admin),
    )
    assert response.status_code == 422
    assert {e["path"] for e in response.json()["errors"]} == {"/sector", "/address"}
    assert db.dump() == before


async def test_validation_errors_never_echo_input(client: httpx.AsyncClient, world: World) -> None:
    canary = "CANARY-free-text-7f3a"
    response = await client.post(
        "/v1/organizations",
        json={"name": canary, "sector": canary},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert response.status_code == 422
    assert canary not in response.text


@pytest.mark.parametrize(
    ("method", "path_key"),
    [("DELETE", "org"), ("PATCH", "org"), ("PUT", "orgs"), ("DELETE", "health")],
)
async def test_B10_verb_tampering_is_405_with_allow(
    client: httpx.AsyncClient, world: World, db: TestDatabase, method: str, path_key: str
) -> None:
    path = {
        "org": f"/v1/organizations/{world.orgs['vsp']}",
        "orgs": "/v1/organizations",
        "health": "/healthz",
    }[path_key]
    before = db.dump()
    response = await client.request(
        method, path, headers=world.headers("vsp", Role.org_admin), json={}
    )
    assert response.status_code == 405
    assert "allow" in response.headers
    assert db.dump() == before


async def test_B10_method_override_header_ignored(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    response = await client.get(
        f"/v1/organizations/{world.orgs['vsp']}",
        headers={**world.headers("vsp", Role.platform_admin), "X-HTTP-Method-Override": "DELETE"},
    )
    assert response.status_code == 200
    assert db.dump() == before


async def test_A19_token_only_from_authorization_header(
    client: httpx.AsyncClient, world: World
) -> None:
    token = world.tokens.mint(world.orgs["vsp"], [Role.caseworker])
    assert (await client.get(f"/v1/organizations?access_token={token}")).status_code == 401
    assert (
        await client.get("/v1/organizations", headers={"Cookie": f"access_token={token}"})
    ).status_code == 401
    assert (
        await client.get("/v1/organizations", headers={"Authorization": f"Basic {token}"})
    ).status_code == 401
    assert (
        await client.get("/v1/organizations", headers={"Authorization": "Bearer "})
    ).status_code == 401
    duplicate = httpx.Headers(
        [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    )
    assert (await client.get("/v1/organizations", headers=duplicate)).status_code == 400
    assert (
        await client.get("/v1/organizations", headers={"Authorization": f"Bearer {token}"})
    ).status_code == 200


async def test_G12_unexpected_fault_is_a_bare_500_problem(app: Any, world: World) -> None:
    secret = "CANARY-in-exception-message"

    @app.get("/v1/_boom")
    async def boom() -> None:
        raise RuntimeError(f"SELECT * FROM t WHERE x = '{secret}' at /srv/accord/service.py")  # noqa: S608

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get("/v1/_boom")
    assert response.status_code == 500
    body = response.json()
    assert body["status"] == 500
    assert "request_id" in body
    assert secret not in response.text
    assert "Traceback" not in response.text
    assert "SELECT" not in response.text


async def test_G14_every_route_is_documented_and_no_store(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    spec = (await client.get("/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    for route, path, methods in app_routes(app):
        if path.startswith(("/docs", "/openapi")) or not getattr(route, "include_in_schema", True):
            continue
        for method in methods - {"HEAD"}:
            assert (method, path) in documented, f"{method} {path} is not in /openapi.json"
    response = await client.get("/v1/organizations", headers=world.headers("vsp", Role.caseworker))
    assert response.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in response.headers


async def test_G14_routed_requests_take_the_template_of_the_chosen_route(
    client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A routed request is labelled with the route the router chose (no second scan
    of every route); only an unrouted one is matched by the middleware itself."""
    from service.web import middleware

    scans: list[str] = []
    original = middleware.route_template

    def counting(routes: Any, scope: Any) -> str:
        scans.append(scope["path"])
        return original(routes, scope)

    monkeypatch.setattr(middleware, "route_template", counting)
    org_id = str(world.orgs["vsp"])
    await client.get(f"/v1/organizations/{org_id}", headers=world.headers("vsp", Role.caseworker))
    assert scans == []
    assert (await client.get("/v1/no-such-thing")).status_code == 404
    assert scans == ["/v1/no-such-thing"]
    metrics = (await client.get("/metrics")).text
    assert 'route="/v1/organizations/{org_id}"' in metrics
    assert 'route="unmatched"' in metrics


async def test_G14_metrics_use_route_templates(client: httpx.AsyncClient, world: World) -> None:
    org_id = str(world.orgs["vsp"])
    await client.get(f"/v1/organizations/{org_id}", headers=world.headers("vsp", Role.caseworker))
    metrics = (await client.get("/metrics")).text
    assert 'route="/v1/organizations/{org_id}"' in metrics
    assert org_id not in metrics


async def test_problem_bodies_are_rfc9457(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/organizations/not-a-uuid")
    assert response.status_code == 401  # authentication is checked before anything else
    body = response.json()
    assert set(body) >= {"type", "title", "status"}
    assert json.loads(response.text)["status"] == 401
