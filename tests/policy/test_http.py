"""The policy endpoints over HTTP: the active set, the explain dry run for every
sector, and an organization's own forbid-only rules (C18), on both databases."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.auth.principals import Role
from service.organizations.models import OrganizationPolicy
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


async def _share_with(
    client: httpx.AsyncClient,
    world: World,
    recipient: str,
    to_sector: Sector,
    *,
    purpose: str,
    categories: list[str],
    join: bool,
) -> None:
    """Make the test collaboration's agreement carry exactly one flow, from victim
    services to `to_sector`, so that only the rule under test can deny."""
    admin = world.headers("platform", Role.platform_admin)
    collab = f"/v1/collaborations/{world.collaboration_id}"
    if join:
        joined = await client.post(f"{collab}/members", json={"org_id": recipient}, headers=admin)
        assert joined.status_code == 201, joined.text
    agreement = {
        "flows": [
            {
                "from_sector": "victim_services",
                "to_sector": to_sector.value,
                "purposes": [purpose],
                "categories": categories,
            }
        ],
        "effective_from": (world.clock.now() - timedelta(days=1)).isoformat(),
        "document_sha256": "ab" * 32,
    }
    amended = await client.put(f"{collab}/agreement", json=agreement, headers=admin)
    assert amended.status_code == 200, amended.text
    await world.sign_agreement()  # it binds once the members signed it (issue 24)


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
    for f in body["files"]:
        assert f["sha256"] == hashlib.sha256(f["text"].encode("utf-8")).hexdigest(), f["name"]


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
    # Contact and needs flow under the agreement, so a consent would release them;
    # counseling_notes has no flow to shelters, so no consent can.
    assert {c: d["outlook"] for c, d in no_consent.items()} == {
        "contact": "needs_consent",
        "needs": "needs_consent",
        "counseling_notes": "never",
    }
    body = _explain_body(world, "shelter", consent=_consent(world, "shelter", ["contact", "needs"]))
    covered = _by_category(await client.post("/v1/policies/explain", json=body, headers=headers))
    assert covered["contact"]["decision"] == "allow"
    assert covered["needs"]["decision"] == "allow"
    # counseling_notes: not in the consent and not in the agreement's flow.
    assert covered["counseling_notes"]["decision"] == "deny"
    assert covered["counseling_notes"]["outlook"] == "never"
    assert covered["contact"]["outlook"] == "allowed"
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
    await _share_with(
        client,
        world,
        recipient,
        sector,
        purpose="services_referral",
        categories=["needs", "counseling_notes", "immigration_status"],
        join=True,
    )
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
        assert decisions["counseling_notes"]["outlook"] == "never"
        ids = {p["id"] for p in decisions["counseling_notes"]["policies"]}
        assert "privileged-never-to-enforcement-or-government" in ids
    if sector is Sector.research:
        assert all(d["decision"] == "deny" for d in decisions.values())
        assert all(d["outlook"] == "never" for d in decisions.values())
    else:
        # Consent, agreement and sector rules all allow it: the positive control.
        assert decisions["needs"]["decision"] == "allow", decisions["needs"]
        # Named explicitly, immigration_status would be released.
        assert decisions["immigration_status"]["outlook"] == "needs_consent"


async def test_C06_research_recipient_explain_says_never_for_every_category(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    categories = sorted(app.state.policy_engine.taxonomy.as_dict()["categories"])
    await _share_with(
        client,
        world,
        str(world.orgs["research"]),
        Sector.research,
        purpose="services_referral",
        categories=categories,
        join=True,
    )
    before = db.dump()
    body = _explain_body(
        world,
        "research",
        categories=categories,
        consent=_consent(world, "research", ["*", *categories]),
    )
    decisions = _by_category(
        await client.post(
            "/v1/policies/explain", json=body, headers=world.headers("vsp", Role.supervisor)
        )
    )
    assert set(decisions) == set(categories)
    for category, decision in decisions.items():
        assert decision["decision"] == "deny", category
        assert decision["outlook"] == "never", category
        ids = {p["id"] for p in decision["policies"]}
        assert "research-sector-receives-no-fields" in ids, category
    assert db.dump() == before


@pytest.mark.parametrize("recipient", ["police", "prosecutor", "platform"])
@pytest.mark.parametrize(
    ("basis", "role", "control"),
    [
        ("consent", Role.caseworker, "needs"),
        ("court_order", Role.caseworker, "needs"),
        ("emergency", Role.supervisor, "contact"),
    ],
)
async def test_C01_counseling_notes_never_to_enforcement_via_explain(
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    recipient: str,
    basis: str,
    role: Role,
    control: str,
) -> None:
    sector = World.SECTORS[recipient]
    categories = ["contact", "needs", "counseling_notes"]
    # The agreement lets counseling_notes flow, so only the privilege rule stands in the way.
    await _share_with(
        client,
        world,
        str(world.orgs[recipient]),
        sector,
        purpose="investigation",
        categories=categories,
        join=recipient == "platform",
    )
    consent = _consent(world, recipient, categories) | {"purposes": ["investigation"]}
    body = _explain_body(
        world,
        recipient,
        purpose="investigation",
        legal_basis=basis,
        categories=categories,
        consent=consent,
        justification_given=True,
    )
    before = db.dump()
    decisions = _by_category(
        await client.post("/v1/policies/explain", json=body, headers=world.headers("vsp", role))
    )
    notes = decisions["counseling_notes"]
    assert notes["decision"] == "deny"
    assert notes["outlook"] == "never"
    assert "privileged-never-to-enforcement-or-government" in {p["id"] for p in notes["policies"]}
    # Positive control: the same request releases a non-privileged category.
    assert decisions[control]["decision"] == "allow", decisions[control]
    assert db.dump() == before


async def test_explain_applies_the_recipients_own_rules(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    rule = FORBID_CONTACT.replace(
        'principal.recipient_sector == "shelter"', 'principal.sender_sector == "victim_services"'
    ).replace("no-contact-to-shelters", "no-contact-from-vsps")
    stored = await client.put(
        f"/v1/organizations/{world.orgs['shelter']}/policy",
        json={"cedar": rule},
        headers=world.headers("shelter", Role.org_admin),
    )
    assert stored.status_code == 200, stored.text
    body = _explain_body(world, "shelter", consent=_consent(world, "shelter", ["contact", "needs"]))
    before = db.dump()
    r = await client.post(
        "/v1/policies/explain", json=body, headers=world.headers("vsp", Role.caseworker)
    )
    decisions = _by_category(r)
    assert decisions["contact"]["decision"] == "deny"
    assert decisions["contact"]["outlook"] == "never"
    assert [p["id"] for p in decisions["contact"]["policies"]] == [
        f"org/{world.orgs['shelter']}/no-contact-from-vsps"
    ]
    assert decisions["needs"]["decision"] == "allow"
    assert r.json()["org_rules"] == [
        {"org_id": str(world.orgs["shelter"]), "version": 1, "sha256": stored.json()["sha256"]}
    ]
    assert db.dump() == before


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"subject_id": "00000000-0000-4000-8000-000000000000"}, "/subject_id"),
        ({"consent": {"given_by_minor": False}}, "/consent/given_by_minor"),
    ],
)
async def test_B11_explain_takes_no_subject_and_no_unknown_property(
    client: httpx.AsyncClient, world: World, db: TestDatabase, extra: dict[str, Any], path: str
) -> None:
    body = _explain_body(world, "shelter")
    if "consent" in extra:
        extra = {"consent": _consent(world, "shelter", ["contact"]) | extra["consent"]}
    before = db.dump()
    r = await client.post(
        "/v1/policies/explain",
        json=body | extra,
        headers=world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 422, r.text
    assert path in {e["path"] for e in r.json()["errors"]}
    assert db.dump() == before


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"purpose": "Services_Referral"}, "/purpose"),
        ({"legal_basis": "warrant"}, "/legal_basis"),
        ({"categories": ["con\u200btact"]}, "/categories/0"),
        ({"recipient_org_id": "00000000-0000-4000-8000-000000000000"}, "/recipient_org_id"),
        ({"consent": {"purposes": ["services_referral "]}}, "/consent/purposes/0"),
        ({"consent": {"categories": ["*", "Counseling_Notes"]}}, "/consent/categories/1"),
    ],
)
async def test_C04_explain_rejects_unknown_vocabulary(
    client: httpx.AsyncClient, world: World, db: TestDatabase, change: dict[str, Any], path: str
) -> None:
    if "consent" in change:
        change = {"consent": _consent(world, "shelter", ["contact"]) | change["consent"]}
    before = db.dump()
    r = await client.post(
        "/v1/policies/explain",
        json=_explain_body(world, "shelter", **change),
        headers=world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 422
    assert path in {e["path"] for e in r.json()["errors"]}
    assert db.dump() == before


def _when(condition: str) -> str:
    return (
        '@id("deep")\n@reason("A test of nesting limits.")\n'
        f"forbid (principal, action, resource) when {{ {condition} }};"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (PERMIT_ALL, "only forbid statements are accepted"),
        ("forbid (", ""),  # a syntax error: Cedar's own message
        (FORBID_CONTACT.replace("resource.name", "resource.nope"), "nope"),
        (FORBID_CONTACT.replace('@id("no-contact-to-shelters")\n', ""), "@id"),
        (FORBID_CONTACT.replace('shelters")', 'shelters\\n")'), "@id"),
        # Brackets nested 1,000 deep (2 KB) overflowed Cedar's parser and ended the
        # process: refused before Cedar reads them. If this regresses, the test
        # worker dies, which fails the run.
        (_when("(" * 1000 + "true" + ")" * 1000), "at most 32"),
        (_when("[" * 1000 + "]" * 1000 + " == []"), "at most 32"),
        # Flat text whose expression tree is too deep for the engine to load.
        (_when("true && " * 150 + "true"), "nested too deeply"),
        (_when("true || " * 2000 + "true"), "nested too deeply"),
    ],
    ids=[
        "permit",
        "syntax",
        "schema",
        "no-id",
        "id-trailing-newline",
        "parens-1000-deep",
        "sets-1000-deep",
        "and-chain-150",
        "or-chain-2000",
    ],
)
async def test_C18_rejected_org_rules_say_why_and_store_nothing(
    client: httpx.AsyncClient, world: World, db: TestDatabase, text: str, problem: str
) -> None:
    before = db.dump()
    r = await client.put(
        f"/v1/organizations/{world.orgs['vsp']}/policy",
        json={"cedar": text},
        headers=world.headers("vsp", Role.org_admin),
    )
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert errors
    assert all(e["path"] == "/cedar" and e["message"] for e in errors)
    assert any(problem in e["message"] for e in errors), errors
    assert db.dump() == before


async def test_C18_org_rules_forbid_only_versioned_and_applied(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    admin = world.headers("vsp", Role.org_admin)
    url = f"/v1/organizations/{world.orgs['vsp']}/policy"
    rejected = await client.put(
        url, json={"cedar": PERMIT_ALL + "\n" + FORBID_CONTACT}, headers=admin
    )
    assert rejected.status_code == 422  # one permit among forbids rejects the whole text

    first = await client.put(url, json={"cedar": FORBID_CONTACT}, headers=admin)
    assert first.status_code == 200
    assert first.json()["version"] == 1
    body = _explain_body(world, "shelter", consent=_consent(world, "shelter", ["contact", "needs"]))
    caseworker = world.headers("vsp", Role.caseworker)
    response = await client.post("/v1/policies/explain", json=body, headers=caseworker)
    decisions = _by_category(response)
    assert decisions["contact"]["decision"] == "deny"
    ids = [p["id"] for p in decisions["contact"]["policies"]]
    assert ids == [f"org/{world.orgs['vsp']}/no-contact-to-shelters"]
    assert decisions["needs"]["decision"] == "allow"  # the rule forbids contact only
    assert response.json()["org_rules"][0]["version"] == 1

    # A new version replaces the old one in decisions; the old one is kept.
    second = await client.put(
        url, json={"cedar": FORBID_CONTACT.replace("contact", "needs")}, headers=admin
    )
    assert second.json()["version"] == 2
    assert second.json()["sha256"] != first.json()["sha256"]
    response = await client.post("/v1/policies/explain", json=body, headers=caseworker)
    decisions = _by_category(response)
    assert decisions["contact"]["decision"] == "allow"
    assert decisions["needs"]["decision"] == "deny"
    assert response.json()["org_rules"][0]["version"] == 2
    async with app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(OrganizationPolicy)
                .where(OrganizationPolicy.org_id == world.orgs["vsp"])
                .order_by(OrganizationPolicy.version)
            )
        ).all()
    assert [(r.version, r.cedar_text) for r in rows] == [
        (1, FORBID_CONTACT),
        (2, FORBID_CONTACT.replace("contact", "needs")),
    ]


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
