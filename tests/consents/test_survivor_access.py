"""Survivor access links (issue 5): a short-lived token bound to one subject reads
that survivor's consents and disclosures and withdraws a consent, and nothing
else: no other subject, no other endpoint, nothing after expiry (A12, A21)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from tests.security.people import without_audit
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World


async def _subject_with_consent(client: httpx.AsyncClient, world: World) -> tuple[str, str]:
    subject, consent = await new_consent(client, world, categories=["contact"])
    return subject, consent["id"]


async def _link(client: httpx.AsyncClient, world: World, subject: str, **body: Any) -> str:
    r = await client.post(
        f"/v1/subjects/{subject}/access-links",
        json=body,
        headers=world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 201, r.text
    token: str = r.json()["token"]
    return token


async def test_the_survivor_sees_exactly_their_own_and_can_withdraw(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject, consent = await _subject_with_consent(client, world)
    other_subject, other_consent = await _subject_with_consent(client, world)
    token = await _link(client, world, subject, lifetime_seconds=900)
    bearer = {"Authorization": f"Bearer {token}"}
    mine = await client.get(f"/v1/subjects/{subject}/consents", headers=bearer)
    assert mine.status_code == 200
    assert [c["id"] for c in mine.json()["items"]] == [consent]
    assert (await client.get(f"/v1/subjects/{subject}/disclosures", headers=bearer)).json()[
        "items"
    ] == []
    # Another survivor's records are invisible.
    assert (
        await client.get(f"/v1/subjects/{other_subject}/consents", headers=bearer)
    ).status_code == 404
    assert (
        await client.post(
            f"/v1/consents/{other_consent}/revoke", json={"reason": "x"}, headers=bearer
        )
    ).status_code == 404
    withdrawn = await client.post(
        f"/v1/consents/{consent}/revoke", json={"reason": "I changed my mind"}, headers=bearer
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["live"] is False
    async with app.state.sessionmaker() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    actions = [e.action for e in entries]
    assert "access_link.created" in actions
    # Two reads and the withdrawal; refused requests roll back and change nothing.
    assert actions.count("access_link.used") == 3
    assert "I changed my mind" not in "".join(e.body for e in entries)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/organizations"),
        ("GET", "/v1/subjects/{subject}"),
        ("GET", "/v1/consents/{consent}"),
        ("GET", "/v1/consents/{consent}/receipt"),
        ("POST", "/v1/subjects"),
        ("POST", "/v1/subjects/{subject}/consents"),
        ("POST", "/v1/subjects/{subject}/access-links"),
        ("GET", "/v1/audit/entries"),
    ],
)
async def test_A12_the_survivor_token_opens_nothing_else(
    client: httpx.AsyncClient, world: World, db: TestDatabase, method: str, path: str
) -> None:
    subject, consent = await _subject_with_consent(client, world)
    token = await _link(client, world, subject)
    before = db.dump()
    r = await client.request(
        method,
        path.format(subject=subject, consent=consent),
        json={} if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 401
    # Nothing changed but the audit of the attempt, for the caseworker (P04).
    after = db.dump()
    assert without_audit(after) == without_audit(before)
    assert after.count("staff_endpoint") == before.count("staff_endpoint") + 1


async def test_A21_the_link_expires_and_lifetimes_are_capped(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject, _ = await _subject_with_consent(client, world)
    token = await _link(client, world, subject, lifetime_seconds=600)
    world.clock.advance(600 + 61)
    r = await client.get(
        f"/v1/subjects/{subject}/consents", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 401
    before = db.dump()
    too_long = await client.post(
        f"/v1/subjects/{subject}/access-links",
        json={"lifetime_seconds": 8 * 86400},
        headers=world.headers("vsp", Role.caseworker),
    )
    assert too_long.status_code == 422
    assert db.dump() == before


async def test_B_only_the_owners_case_staff_issue_links(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject, _ = await _subject_with_consent(client, world)
    before = db.dump()
    url = f"/v1/subjects/{subject}/access-links"
    assert (
        await client.post(url, json={}, headers=world.headers("shelter", Role.caseworker))
    ).status_code == 404
    assert (
        await client.post(url, json={}, headers=world.headers("vsp", Role.auditor))
    ).status_code == 403
    assert db.dump() == before
