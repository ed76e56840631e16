"""The policy endpoints over HTTP: the active set, the explain dry run for every
sector, and an organization's own forbid-only rules (C18), on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from service.sectors import Sector
from tests.support.databases import TestDatabase
from tests.support.world import World

FORBID_CONTACT = """@id("no-contact-to-shelters")
@reason("We do not send contact details to shelters.")
forbid (principal, action == Action::"release", resource)
when { resource.name == "contact" && principal.recipient_sector == "shelter" };
"""
PERMIT_ALL = '@id("p")\n@reason("r")\npermit (principal, action, resource);'


def _consent(world: World, recipient: str, categories: list[str]) -> dict[str, Any]:
    return {
        "recipients": [str(world.orgs[recipient])],
        "purposes": ["services_referral"],
        "categories": categories,
        "expires_at": (world.clock.now() + timedelta(days=30)).isoformat(),
    }


def _explain_body(world: World, recipient: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "recipient_org_id": str(world.orgs[recipient]),
        "purpose": "services_referral",
        "legal_basis": "consent",
        "categories": ["contact", "needs", "counseling_notes"],
    }
    body.update(extra)
    return body


def _by_category(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {d["category"]: d for d in response.json()["decisions"]}


async def test_the_active_policy_set_is_published(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    r = await client.get("/v1/policies", headers=world.headers("police", Role.investigator))
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == app.state.policy_engine.version
    names = {f["name"] for f in body["files"]}
    assert {"basis.cedar", "privileged.cedar", "categories.toml"} <= names
    assert body["taxonomy"]["categories"]["counseling_notes"]["privileged"] is True


async def test_explain_allows_only_what_consent_and_agreement_cover(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    headers = world.headers("vsp", Role.caseworker)
    before = db.dump()
    no_consent = _by_category(
        await client.post(
            "/v1/policies/explain", json=_explain_body(world, "shelter"), headers=headers
        )
    )
    assert {c: d["decision"] for c, d in no_consent.items()} == {
        "contact": "deny",
        "needs": "deny",
        "counseling_notes": "deny",
    }
    body = _explain_body(world, "shelter", consent=_consent(world, "shelter", ["contact", "needs"]))
    covered = _by_category(await client.post("/v1/policies/explain", json=body, headers=headers))
    assert covered["contact"]["decision"] == "allow"
    assert covered["needs"]["decision"] == "allow"
    # counseling_notes: not in the consent and not in the agreement's flow.
    assert covered["counseling_notes"]["decision"] == "deny"
    assert all(d["policies"] for d in covered.values())
    assert db.dump() == before  # a dry run writes nothing


@pytest.mark.parametrize("sector", list(Sector))
async def test_explain_works_for_every_sector(
    client: httpx.AsyncClient, world: World, sector: Sector
) -> None:
    created = await client.post(
        "/v1/organizations",
        json={"name": f"{sector.value} recipient", "sector": sector.value},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert created.status_code == 201
    recipient = created.json()["id"]
    admin = world.headers("platform", Role.platform_admin)
    collab = f"/v1/collaborations/{world.collaboration_id}"
    joined = await client.post(f"{collab}/members", json={"org_id": recipient}, headers=admin)
    assert joined.status_code == 201
    agreement = {
        "flows": [
            {
                "from_sector": "victim_services",
                "to_sector": sector.value,
                "purposes": ["services_referral"],
                "categories": ["needs", "counseling_notes", "immigration_status"],
            }
        ],
        "effective_from": (world.clock.now() - timedelta(days=1)).isoformat(),
        "document_sha256": "ab" * 32,
    }
    amended = await client.put(f"{collab}/agreement", json=agreement, headers=admin)
    assert amended.status_code == 200, amended.text
    consent = {
        "recipients": [recipient],
        "purposes": ["services_referral"],
        "categories": ["*", "counseling_notes"],
        "expires_at": (world.clock.now() + timedelta(days=30)).isoformat(),
    }
    body = {
        "recipient_org_id": recipient,
        "purpose": "services_referral",
        "legal_basis": "consent",
        "categories": ["needs", "counseling_notes", "immigration_status"],
        "consent": consent,
    }
    decisions = _by_category(
        await client.post(
            "/v1/policies/explain", json=body, headers=world.headers("vsp", Role.caseworker)
        )
    )
    assert set(decisions) == {"needs", "counseling_notes", "immigration_status"}
    for decision in decisions.values():
        assert decision["policies"], decision
        assert all(p["id"] and p["reason"] for p in decision["policies"])
    # A wildcard never covers an explicit category.
    assert decisions["immigration_status"]["decision"] == "deny"
    if sector in (Sector.law_enforcement, Sector.prosecution, Sector.government):
        assert decisions["counseling_notes"]["decision"] == "deny"
        ids = {p["id"] for p in decisions["counseling_notes"]["policies"]}
        assert "privileged-never-to-enforcement-or-government" in ids
    if sector is Sector.research:
        assert all(d["decision"] == "deny" for d in decisions.values())
    else:
        # Consent, agreement and sector rules all allow it: the positive control.
        assert decisions["needs"]["decision"] == "allow", decisions["needs"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"purpose": "Services_Referral"}, "/purpose"),
        ({"legal_basis": "warrant"}, "/legal_basis"),
        ({"categories": ["con\u200btact"]}, "/categories/0"),
        ({"recipient_org_id": "00000000-0000-4000-8000-000000000000"}, "/recipient_org_id"),
    ],
)
async def test_C04_explain_rejects_unknown_vocabulary(
    client: httpx.AsyncClient, world: World, db: TestDatabase, change: dict[str, Any], path: str
) -> None:
    before = db.dump()
    r = await client.post(
        "/v1/policies/explain",
        json=_explain_body(world, "shelter", **change),
        headers=world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 422
    assert path in {e["path"] for e in r.json()["errors"]}
    assert db.dump() == before


async def test_C18_org_rules_forbid_only_versioned_and_applied(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    admin = world.headers("vsp", Role.org_admin)
    url = f"/v1/organizations/{world.orgs['vsp']}/policy"
    before = db.dump()
    for text in (PERMIT_ALL, "forbid (", FORBID_CONTACT.replace("resource.name", "resource.nope")):
        r = await client.put(url, json={"cedar": text}, headers=admin)
        assert r.status_code == 422, text
        assert r.json()["errors"]
    assert "only forbid" in (await client.put(url, json={"cedar": PERMIT_ALL}, headers=admin)).text
    assert db.dump() == before

    first = await client.put(url, json={"cedar": FORBID_CONTACT}, headers=admin)
    assert first.status_code == 200
    assert first.json()["version"] == 1
    body = _explain_body(world, "shelter", consent=_consent(world, "shelter", ["contact", "needs"]))
    decisions = _by_category(
        await client.post(
            "/v1/policies/explain", json=body, headers=world.headers("vsp", Role.caseworker)
        )
    )
    assert decisions["contact"]["decision"] == "deny"
    ids = [p["id"] for p in decisions["contact"]["policies"]]
    assert ids == [f"org/{world.orgs['vsp']}/no-contact-to-shelters"]
    assert decisions["needs"]["decision"] == "allow"  # the rule forbids contact only

    second = await client.put(url, json={"cedar": FORBID_CONTACT + "\n"}, headers=admin)
    assert second.json()["version"] == 2
    assert second.json()["sha256"] != first.json()["sha256"]


async def test_C18_org_rules_of_another_organization_are_404(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    r = await client.put(
        f"/v1/organizations/{world.orgs['shelter']}/policy",
        json={"cedar": FORBID_CONTACT},
        headers=world.headers("vsp", Role.org_admin),
    )
    assert r.status_code == 404
    assert db.dump() == before
