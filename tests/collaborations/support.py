"""Helpers for the countersigned-agreement tests (docs/agreements.md): propose,
sign in the client over what the history shows, withdraw, and explain."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
from accord_client import agreements

from service.auth.principals import Role
from tests.support.world import World

ADMIN = (Role.org_admin,)


def flow(to_sector: str, purposes: list[str], categories: list[str]) -> dict[str, Any]:
    return {
        "from_sector": "victim_services",
        "to_sector": to_sector,
        "purposes": purposes,
        "categories": categories,
    }


async def propose(
    client: httpx.AsyncClient, world: World, flows: list[dict[str, Any]], text: bytes, collab: str
) -> int:
    now = world.clock.now()
    r = await client.put(
        f"/v1/collaborations/{collab}/agreement",
        json={
            "flows": flows,
            "effective_from": (now - timedelta(days=1)).isoformat(),
            "effective_to": (now + timedelta(days=365)).isoformat(),
            "document_sha256": hashlib.sha256(text).hexdigest(),
        },
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 200, r.text
    version: int = r.json()["agreement"]["version"]
    return version


async def history(client: httpx.AsyncClient, world: World, org: str, collab: str) -> Any:
    r = await client.get(
        f"/v1/collaborations/{collab}/agreements", headers=world.headers(org, "caseworker")
    )
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def sign(
    client: httpx.AsyncClient, world: World, org: str, version: int, collab: str
) -> httpx.Response:
    """The member's org_admin signs `version` in the client, over the history item."""
    item = next(i for i in await history(client, world, org, collab) if i["version"] == version)
    key_id, seed = world.signing_keys[org]
    body = agreements.countersignature(collab, item, key_id, seed)
    return await client.post(
        f"/v1/collaborations/{collab}/agreements/signatures",
        json=body,
        headers=world.headers(org, Role.org_admin),
    )


async def withdraw(
    client: httpx.AsyncClient, world: World, org: str, collab: str
) -> httpx.Response:
    return await client.delete(
        f"/v1/collaborations/{collab}/agreements/signatures/{world.orgs[org]}",
        headers=world.headers(org, Role.org_admin),
    )


async def explain(
    client: httpx.AsyncClient,
    world: World,
    sender: str,
    recipient: str,
    purpose: str,
    categories: list[str],
) -> dict[str, Any]:
    """Explain with the broadest hypothetical consent for these categories."""
    now = world.clock.now()
    r = await client.post(
        "/v1/policies/explain",
        json={
            "recipient_org_id": str(world.orgs[recipient]),
            "purpose": purpose,
            "legal_basis": "consent",
            "categories": categories,
            "consent": {
                "recipients": [str(world.orgs[recipient])],
                "purposes": [purpose],
                "categories": categories,
                "expires_at": (now + timedelta(days=30)).isoformat(),
            },
        },
        headers=world.headers(sender, "caseworker"),
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def allowed(explained: dict[str, Any]) -> set[str]:
    return {d["category"] for d in explained["decisions"] if d["decision"] == "allow"}
