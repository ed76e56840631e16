"""Consent grants over HTTP on both engines: every validation rule (422, nothing
stored), time boundaries, immutable versions, irreversible idempotent revocation,
the minor and guardian rule, scoping (B04) and what the policy engine reads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.consents.in_force import consent_in_force
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_subject
from tests.support.world import World


async def _subject(client: httpx.AsyncClient, world: World, *, minor: bool = False) -> str:
    return await new_subject(client, world, minor=minor)


def _grant(world: World, **change: Any) -> dict[str, Any]:
    return grant_body(world, **change)


async def _create(
    client: httpx.AsyncClient, world: World, subject: str, **change: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/subjects/{subject}/consents",
        json=_grant(world, **change),
        headers=world.headers("vsp", Role.caseworker),
    )


async def test_a_grant_is_recorded_live_and_audited(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject = await _subject(client, world)
    r = await _create(client, world, subject)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["live"] is True
    assert body["version"] == 1
    assert body["valid_from"] == world.clock.now().isoformat().replace("+00:00", "Z")
    async with app.state.sessionmaker() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert "consent.created" in actions


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"recipients": []}, "/recipients"),
        ({"recipients": ["00000000-0000-4000-8000-000000000000"]}, "/recipients/0"),
        ({"purposes": []}, "/purposes"),
        ({"purposes": ["Services_Referral"]}, "/purposes/0"),
        ({"categories": []}, "/categories"),
        ({"categories": ["contact", "con\u200btact"]}, "/categories/1"),
        ({"categories": ["contact", "contact"]}, "/categories/1"),
        ({"fields": []}, "/fields"),
        ({"expires_at": "2026-11-22T11:59:59Z"}, "/expires_at"),
        (
            {"valid_from": "2026-12-01T00:00:00Z", "expires_at": "2026-11-30T00:00:00Z"},
            "/expires_at",
        ),
        ({"expires_at": "2028-01-01T00:00:00Z"}, "/expires_at"),
        ({"evidence_sha256": ...}, "/evidence_sha256"),
        ({"method": "verbal", "evidence_sha256": ...}, "/witness_role"),
        ({"given_by": "parent_or_guardian"}, "/given_by"),
        ({"given_by": "legal_representative"}, "/giver_ref"),
        ({"giver_ref": "AB" * 32}, "/giver_ref"),
        ({"supersedes": "00000000-0000-4000-8000-000000000000"}, "/supersedes"),
    ],
)
async def test_every_rule_is_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient, world: World, db: TestDatabase, change: dict[str, Any], path: str
) -> None:
    subject = await _subject(client, world)
    before = db.dump()
    r = await _create(client, world, subject, **change)
    assert r.status_code == 422, r.text
    assert path in {e["path"] for e in r.json()["errors"]}
    assert db.dump() == before


@pytest.mark.parametrize(
    "extra", [{"id": "x"}, {"version": 3}, {"revoked_at": None}, {"recorded_by": "mallory"}]
)
async def test_B11_mass_assignment_refused(
    client: httpx.AsyncClient, world: World, db: TestDatabase, extra: dict[str, Any]
) -> None:
    subject = await _subject(client, world)
    before = db.dump()
    r = await _create(client, world, subject, **extra)
    assert r.status_code == 422
    assert db.dump() == before


async def test_verbal_consent_with_a_witness_is_accepted(
    client: httpx.AsyncClient, world: World
) -> None:
    subject = await _subject(client, world)
    r = await _create(
        client, world, subject, method="verbal", evidence_sha256=..., witness_role="advocate"
    )
    assert r.status_code == 201, r.text


async def test_time_boundaries_with_the_injected_clock(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    now = world.clock.now()
    start, end = now + timedelta(hours=1), now + timedelta(days=2)
    subject = await _subject(client, world)
    r = await _create(
        client, world, subject, valid_from=start.isoformat(), expires_at=end.isoformat()
    )
    consent_id = r.json()["id"]
    url = f"/v1/consents/{consent_id}"
    expectations = [
        (start - timedelta(seconds=1), False),
        (start, True),
        (end - timedelta(seconds=1), True),
        (end, False),
    ]
    for moment, live in expectations:
        world.clock.set(moment)
        headers = world.headers("vsp", Role.caseworker)  # a token valid at that moment
        assert (await client.get(url, headers=headers)).json()["live"] is live, moment


async def test_amend_keeps_history_and_revoke_is_final_and_idempotent(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject = await _subject(client, world)
    first = (await _create(client, world, subject)).json()
    second = await _create(client, world, subject, supersedes=first["id"], categories=["needs"])
    assert second.status_code == 201, second.text
    assert second.json()["version"] == 2
    assert second.json()["grant_id"] == first["id"]
    headers = world.headers("vsp", Role.supervisor)
    history = (await client.get(f"/v1/subjects/{subject}/consents", headers=headers)).json()
    assert [c["version"] for c in history["items"]] == [2, 1]
    assert [c["live"] for c in history["items"]] == [True, False]
    stale = await _create(client, world, subject, supersedes=first["id"])
    assert stale.status_code == 409

    url = f"/v1/consents/{second.json()['id']}/revoke"
    revoked = await client.post(url, json={"reason": "withdrawn"}, headers=headers)
    assert revoked.status_code == 200
    assert revoked.json()["live"] is False
    before = db.dump()
    again = await client.post(url, json={"reason": "again"}, headers=headers)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert db.dump() == before  # D06: one revocation, one audit entry
    after_revoke = await _create(client, world, subject, supersedes=second.json()["id"])
    assert after_revoke.status_code == 409
    async with app.state.sessionmaker() as session:
        assert await consent_in_force(session, uuid_of(second), world.clock.now()) is not None
        in_force = await consent_in_force(session, uuid_of(second), world.clock.now())
        assert in_force is not None
        assert in_force.revoked_at is not None  # the engine denies from here on
        assert await consent_in_force(session, uuid_of(first), world.clock.now()) is None


def uuid_of(response: httpx.Response | dict[str, Any]) -> Any:
    import uuid

    body = response.json() if isinstance(response, httpx.Response) else response
    return uuid.UUID(body["id"])


async def test_a_minors_grant_needs_a_live_guardian_grant(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject = await _subject(client, world, minor=True)
    own = (await _create(client, world, subject)).json()
    async with app.state.sessionmaker() as session:
        alone = await consent_in_force(session, uuid_of(own), world.clock.now())
    assert alone is not None
    assert alone.given_by_minor
    assert alone.guardian is None
    guardian = await _create(
        client, world, subject, given_by="parent_or_guardian", giver_ref="cd" * 32
    )
    assert guardian.status_code == 201
    async with app.state.sessionmaker() as session:
        paired = await consent_in_force(session, uuid_of(own), world.clock.now())
    assert paired is not None
    assert paired.guardian is not None


async def test_C_versions_are_immutable_in_the_database(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject = await _subject(client, world)
    consent = (await _create(client, world, subject)).json()
    await client.post(
        f"/v1/consents/{consent['id']}/revoke",
        json={"reason": "r"},
        headers=world.headers("vsp", Role.caseworker),
    )
    before = db.dump()
    for statement in (
        "UPDATE consent_versions SET expires_at = valid_from",
        "DELETE FROM consent_versions",
        "DELETE FROM consent_revocations",
        "UPDATE consent_revocations SET reason = 'x'",
    ):
        async with app.state.sessionmaker() as session:
            with pytest.raises(DBAPIError, match="immutable"):
                await session.execute(text(statement))
            await session.rollback()
    assert db.dump() == before


@pytest.mark.parametrize(
    ("org", "role"),
    [("shelter", Role.caseworker), ("police", Role.investigator), ("unrelated", Role.supervisor)],
)
async def test_B04_consents_of_another_organization_are_404(
    client: httpx.AsyncClient, world: World, db: TestDatabase, org: str, role: Role
) -> None:
    subject = await _subject(client, world)
    consent = (await _create(client, world, subject)).json()
    before = db.dump()
    headers = world.headers(org, role)
    calls = [
        client.get(f"/v1/consents/{consent['id']}", headers=headers),
        client.post(f"/v1/consents/{consent['id']}/revoke", json={"reason": "x"}, headers=headers),
        client.get(f"/v1/subjects/{subject}/consents", headers=headers),
        client.post(f"/v1/subjects/{subject}/consents", json=_grant(world), headers=headers),
    ]
    for call in calls:
        r = await call
        expected = 403 if role is Role.investigator else 404
        assert r.status_code == expected, r.text
    assert db.dump() == before
    no_token = await client.get(f"/v1/consents/{consent['id']}")
    assert no_token.status_code == 401
