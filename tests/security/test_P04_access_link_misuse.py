"""P04 (docs/threat-model.md; next to SECURITY-TESTS A12 and A21): every refused use of
a survivor's access link is audited, with a reason code and nothing the request
carried: its token on another subject's records or on a staff endpoint, its token or
its page session after it expired or was ended. The caseworker sees the attempts
(`GET /v1/subjects/{id}/access-link-refusals`); the answers themselves are unchanged
(401, 404 as for a random id). Both engines."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from tests.pages.support import issue_link, new_browser
from tests.security.people import without_audit
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World

CANARY = "CANARY-p04-attacker-sent-7c1e"


async def _refusals(client: httpx.AsyncClient, world: World, subject: str) -> list[str]:
    r = await client.get(
        f"/v1/subjects/{subject}/access-link-refusals",
        headers=world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 200, r.text
    return [item["reason"] for item in r.json()["items"]]


async def _bodies(app: Any) -> str:
    """The refusal entries, as stored."""
    async with app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "access_link.refused")
            )
        ).all()
    return "\n".join(row.body for row in rows)


async def test_P04_the_token_on_another_record_or_a_staff_endpoint_is_audited(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject, consent = await new_consent(client, world)
    other_subject, other_consent = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    bearer = {"Authorization": f"Bearer {link['token']}", "X-Canary": CANARY}
    before = db.dump()
    attempts = [
        ("GET", f"/v1/subjects/{other_subject}/consents", None, 404),
        ("GET", f"/v1/subjects/{uuid.uuid4()}/disclosures", None, 404),
        ("POST", f"/v1/consents/{other_consent['id']}/revoke", {"reason": CANARY}, 404),
        ("GET", f"/v1/consents/{consent['id']}", None, 401),
        ("POST", "/v1/subjects", {"note": CANARY}, 401),
    ]
    for method, path, body, status in attempts:
        r = await client.request(method, path, json=body, headers=bearer)
        assert r.status_code == status, (path, r.text)
    assert await _refusals(client, world, subject) == [
        "staff_endpoint",
        "staff_endpoint",
        "other_record",
        "other_record",
        "other_record",
    ]
    # Nothing but the audit log changed, and nothing the attacker sent was stored.
    assert without_audit(db.dump()) == without_audit(before)
    stored = await _bodies(app)
    assert CANARY not in stored
    assert other_subject not in stored
    assert other_consent["id"] not in stored
    # The other subject's caseworker sees nothing about this link.
    assert await _refusals(client, world, other_subject) == []
    # Lawful uses still count as uses, not refusals.
    ok = await client.get(f"/v1/subjects/{subject}/consents", headers=bearer)
    assert ok.status_code == 200
    assert len(await _refusals(client, world, subject)) == 5


async def test_P04_the_token_after_it_expired_or_was_ended_is_audited(
    client: httpx.AsyncClient, world: World
) -> None:
    subject, _ = await new_consent(client, world)
    short = await issue_link(client, world, subject, lifetime_seconds=600)
    ended = await issue_link(client, world, subject)
    r = await client.delete(
        f"/v1/access-links/{ended['id']}", headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 204
    path = f"/v1/subjects/{subject}/consents"
    r = await client.get(path, headers={"Authorization": f"Bearer {ended['token']}"})
    assert r.status_code == 401
    world.clock.advance(600 + 61)
    r = await client.get(path, headers={"Authorization": f"Bearer {short['token']}"})
    assert r.status_code == 401
    r = await client.get("/v1/referrals", headers={"Authorization": f"Bearer {short['token']}"})
    assert r.status_code == 401
    assert await _refusals(client, world, subject) == ["staff_endpoint", "expired", "revoked"]
    # A token the service did not sign names no link and writes nothing.
    forged = short["token"].rsplit(".", 1)[0] + "." + "A" * 86
    r = await client.get(path, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401
    assert len(await _refusals(client, world, subject)) == 3


async def test_P04_the_page_session_after_it_ended_and_on_another_record_is_audited(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject, _ = await new_consent(client, world)
    _, theirs = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    browser = new_browser(app)
    async with browser.http:
        assert (await browser.open(link)).status_code == 303
        assert (await browser.get("/s/consents")).status_code == 200
        r = await browser.get(f"/s/consents/{theirs['id']}/receipt")
        assert r.status_code == 404
        r = await client.delete(
            f"/v1/access-links/{link['id']}", headers=world.headers("vsp", Role.caseworker)
        )
        assert r.status_code == 204
        assert (await browser.get("/s/consents")).status_code == 403
    assert await _refusals(client, world, subject) == ["revoked", "other_record"]
    stored = await _bodies(app)
    assert theirs["id"] not in stored


async def test_P04_only_the_owners_case_staff_read_the_refusals(
    client: httpx.AsyncClient, world: World
) -> None:
    subject, _ = await new_consent(client, world)
    path = f"/v1/subjects/{subject}/access-link-refusals"
    assert (
        await client.get(path, headers=world.headers("shelter", Role.caseworker))
    ).status_code == 404
    assert (await client.get(path, headers=world.headers("vsp", Role.auditor))).status_code == 403
    body = (await client.get(path, headers=world.headers("vsp", Role.supervisor))).json()
    assert body == {"items": [], "next_cursor": None}
