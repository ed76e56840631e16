"""Factories for subjects and consent grants through the API (generated test data only)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from service.auth.principals import Role
from tests.support.world import World


async def new_subject(client: httpx.AsyncClient, world: World, *, minor: bool = False) -> str:
    r = await client.post(
        "/v1/subjects", json={"is_minor": minor}, headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def grant_body(world: World, **change: Any) -> dict[str, Any]:
    """A valid grant from the VSP to the shelter; `name=...` (Ellipsis) drops a member."""
    body: dict[str, Any] = {
        "recipients": [str(world.orgs["shelter"])],
        "purposes": ["services_referral"],
        "categories": ["contact", "needs"],
        "expires_at": (world.clock.now() + timedelta(days=90)).isoformat(),
        "method": "written",
        "language": "es-MX",
        "evidence_sha256": "ab" * 32,
    }
    body.update(change)
    return {k: v for k, v in body.items() if v is not ...}


async def new_consent(
    client: httpx.AsyncClient, world: World, subject: str | None = None, **change: Any
) -> tuple[str, dict[str, Any]]:
    """(subject id, the created consent) for a new or given subject."""
    subject = subject or await new_subject(client, world)
    r = await client.post(
        f"/v1/subjects/{subject}/consents",
        json=grant_body(world, **change),
        headers=world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 201, r.text
    consent: dict[str, Any] = r.json()
    return subject, consent
