"""The client's directory, people, case and delivery methods against the real app
(both engines): collaborations and their agreements, an organization's own rules,
principals and token revocation, subjects, access links, alleged abusers, and a
delivery whose withheld fields keep the reasons and deciding policies."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
import pytest
from accord_client import agreements
from accord_client.api import AsyncAccordClient
from accord_client.api_models import AuthenticationError, ConsentDraft, agreement_body
from accord_client.envelope import PlainField
from accord_client.keys import generate_organization_keys

from service.auth.principals import Role
from tests.client.conftest import BASE_URL, NO_WAIT
from tests.support.world import World

ORG_FORBID = """@id("no-needs-to-shelters")
@reason("We do not send needs to shelters.")
forbid (principal, action == Action::"release", resource)
when { resource.name == "needs" && principal.recipient_sector == "shelter" };
"""


def client(app: Any, world: World, org: str, role: Role, **claims: Any) -> AsyncAccordClient:
    return AsyncAccordClient(
        base_url=BASE_URL,
        token=world.tokens.mint(world.orgs[org], [role], **claims),
        transport=httpx.ASGITransport(app=app),
        retry=NO_WAIT,
    )


async def test_collaborations_agreements_members_and_an_organizations_rules(
    app: Any, world: World
) -> None:
    now = world.clock.now()
    agreement = agreement_body(
        flows=[
            {
                "from_sector": "victim_services",
                "to_sector": "shelter",
                "purposes": ["services_referral"],
                "categories": ["contact"],
            }
        ],
        effective_from=now - timedelta(days=1),
        document_sha256=hashlib.sha256(b"a second mou").hexdigest(),
    )
    async with client(app, world, "platform", Role.platform_admin) as platform:
        clinic = await platform.create_organization(name="Clinic", sector="healthcare")
        assert (clinic["name"], clinic["sector"]) == ("Clinic", "healthcare")
        created = await platform.create_collaboration(name="Second", agreement=agreement)
        assert created["agreement"]["version"] == 1
        listed = [c["id"] async for c in platform.iter_collaborations(page_size=1)]
        assert {created["id"], str(world.collaboration_id)} <= set(listed)
        member = await platform.add_member(created["id"], world.orgs["vsp"])
        assert member["org_id"] == str(world.orgs["vsp"])
        fetched = await platform.get_collaboration(created["id"])
        assert [m["org_id"] for m in fetched["members"]] == [str(world.orgs["vsp"])]
        await platform.set_agreement(created["id"], agreement)
        history = await platform.list_agreements(created["id"])
        assert sorted(a["version"] for a in history["items"]) == [1, 2]
        async with client(app, world, "vsp", Role.org_admin) as vsp_admin:
            # Countersigned in the client (docs/agreements.md), then withdrawn.
            [item] = [i for i in history["items"] if i["version"] == 2]
            key_id, seed = world.signing_keys["vsp"]
            body = agreements.countersignature(created["id"], item, key_id, seed)
            signed = await vsp_admin.sign_agreement(created["id"], **body)
            assert (signed["version"], signed["key_id"]) == (2, key_id)
            withdrawn = await vsp_admin.withdraw_agreement_signature(
                created["id"], world.orgs["vsp"]
            )
            assert [s["version"] for s in withdrawn["items"]] == [2]
        assert await platform.remove_member(created["id"], world.orgs["vsp"]) is None
    async with client(app, world, "vsp", Role.org_admin) as admin:
        rules = await admin.set_org_policy(world.orgs["vsp"], cedar=ORG_FORBID)
        assert rules["org_id"] == str(world.orgs["vsp"])
        policies = await admin.get_policies()
        assert policies["version"]


async def test_principals_are_listed_deactivated_reactivated_and_a_token_revoked(
    app: Any, world: World
) -> None:
    async with client(app, world, "vsp", Role.caseworker, sub="bob", jti="bob-token-1") as bob:
        await bob.create_subject()  # bob is seen
        async with client(app, world, "vsp", Role.org_admin) as admin:
            seen = [p async for p in admin.iter_principals(world.orgs["vsp"])]
            assert "bob" in {p["subject"] for p in seen}
            off = await admin.deactivate_principal(world.orgs["vsp"], subject="bob")
            assert off["active"] is False
            with pytest.raises(AuthenticationError):
                await bob.create_subject()
            on = await admin.reactivate_principal(world.orgs["vsp"], subject="bob")
            assert on["active"] is True
            await bob.create_subject()
            revoked = await admin.revoke_token(world.orgs["vsp"], jti="bob-token-1")
            assert revoked["jti"] == "bob-token-1"
            with pytest.raises(AuthenticationError):
                await bob.create_subject()


async def test_subjects_access_links_alleged_abusers_and_reviews(app: Any, world: World) -> None:
    async with client(app, world, "vsp", Role.caseworker) as caseworker:
        subject = await caseworker.create_subject(is_minor=True)
        assert (await caseworker.get_subject(subject["id"]))["is_minor"] is True
        link = await caseworker.create_access_link(subject["id"], lifetime_seconds=600)
        assert "/s/" in link["url"]
        assert link["token"]
        assert await caseworker.revoke_access_link(link["id"]) is None
        refusals = await caseworker.list_access_link_refusals(subject["id"])
        assert refusals.items == []
        abuser = await caseworker.record_alleged_abuser(subject["id"], person_ref="cd" * 32)
        assert abuser["subject_id"] == subject["id"]
        assert await caseworker.list_consent_reviews() == []


async def test_a_withheld_delivery_keeps_each_fields_reasons_and_policies(
    app: Any, world: World
) -> None:
    keys = {}
    for org in ("vsp", "shelter"):
        keys[org] = generate_organization_keys(str(world.orgs[org]))
        async with client(app, world, org, Role.org_admin) as admin:
            await admin.register_keys(world.orgs[org], keys[org])
    async with (
        client(app, world, "vsp", Role.caseworker) as sender,
        client(app, world, "shelter", Role.caseworker) as recipient,
    ):
        subject = await sender.create_subject()
        consent = await sender.create_consent(
            subject["id"],
            ConsentDraft(
                recipients=(str(world.orgs["shelter"]),),
                purposes=("services_referral",),
                categories=("contact", "needs"),
                expires_at=world.clock.now() + timedelta(days=90),
                method="written",
                language="en",
                evidence_sha256="ab" * 32,
            ),
        )
        referral = await sender.send_referral(
            keys=keys["vsp"],
            recipient_org_id=world.orgs["shelter"],
            subject_id=subject["id"],
            consent_id=consent["id"],
            purpose="services_referral",
            fields=[PlainField(name="phone", category="contact", value="+1-555-0100")],
        )
        await sender.revoke_consent(consent["id"], reason="survivor withdrew")
        received = await recipient.receive_referral(referral["id"], keys["shelter"])
        assert dict(received.opened.values) == {}
        [withheld] = received.withheld
        assert withheld["name"] == "phone"
        assert withheld["reasons"]
        assert withheld["policies"]
        assert withheld["digest"]
