"""The client's records-request, obligation and review methods against the real app
(both engines): the police ask, the VSP answers sealed to the police's directory
key, the police open it with the VSP's directory key; the duties it leaves are
listed and completed through the client too."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import httpx
from accord_client.api import AsyncAccordClient
from accord_client.api_models import agreement_body
from accord_client.envelope import PlainField
from accord_client.keys import OrganizationKeys, generate_organization_keys

from service.auth.principals import Role
from tests.client.conftest import BASE_URL, NO_WAIT
from tests.support.world import FLOW_CATEGORIES, World

DOC = hashlib.sha256(b"the court order").hexdigest()


def client(app: Any, world: World, org: str, role: Role, sub: str = "alice") -> AsyncAccordClient:
    return AsyncAccordClient(
        base_url=BASE_URL,
        token=world.tokens.mint(world.orgs[org], [role], sub=sub),
        transport=httpx.ASGITransport(app=app),
        retry=NO_WAIT,
    )


async def law_enforcement_kit(app: Any, world: World) -> dict[str, OrganizationKeys]:
    """The agreement extended to law enforcement, and keys for the VSP and police."""
    now = world.clock.now()
    agreement = agreement_body(
        flows=[
            {
                "from_sector": "victim_services",
                "to_sector": "shelter",
                "purposes": ["services_referral"],
                "categories": FLOW_CATEGORIES,
            },
            {
                "from_sector": "victim_services",
                "to_sector": "law_enforcement",
                "purposes": ["investigation", "emergency_contact"],
                "categories": ["identity", "contact", "location"],
            },
        ],
        effective_from=now - timedelta(days=1),
        effective_to=now + timedelta(days=365),
        document_sha256=hashlib.sha256(b"task force mou v2").hexdigest(),
    )
    async with client(app, world, "platform", Role.platform_admin) as platform:
        updated = await platform.set_agreement(str(world.collaboration_id), agreement)
        assert updated["agreement"]["version"] == 2
    await world.sign_agreement()  # it binds once the members signed it (issue 24)
    keys = {}
    for org in ("vsp", "police"):
        keys[org] = generate_organization_keys(str(world.orgs[org]))
        async with client(app, world, org, Role.org_admin) as admin:
            await admin.register_keys(world.orgs[org], keys[org])
    return keys


async def test_a_court_ordered_request_answered_delivered_and_its_obligation_done(
    app: Any, world: World
) -> None:
    keys = await law_enforcement_kit(app, world)
    vsp, police = world.orgs["vsp"], world.orgs["police"]
    async with (
        client(app, world, "vsp", Role.caseworker) as caseworker,
        client(app, world, "police", Role.investigator) as investigator,
    ):
        subject = await caseworker.create_subject()
        asked = await investigator.create_records_request(
            holder_org_id=vsp,
            subject_ref=subject["id"],
            categories=["location"],
            purpose="investigation",
            legal_basis="court_order",
            legal_reference="2026-CR-0042",
            document_sha256=DOC,
            justification="Order to locate a material witness",
        )
        assert [p["outcome"] for p in asked["preliminary"]] == ["allowed"]
        inbox = caseworker.iter_records_requests(box="received")
        assert asked["id"] in [r["id"] async for r in inbox]
        made = await investigator.list_records_requests(box="made")
        assert [r["id"] for r in made.items] == [asked["id"]]

        answered = await caseworker.answer_records_request(
            asked["id"],
            keys=keys["vsp"],
            subject_id=subject["id"],
            fields=[PlainField(name="location", category="location", value="Unit 9")],
        )
        assert answered["status"] == "released"
        assert (await investigator.get_records_request(asked["id"]))["status"] == "released"

        # The police open it with the VSP's key from the directory.
        received = await investigator.receive_records_answer(asked["id"], keys["police"])
        assert dict(received.opened.values) == {"location": "Unit 9"}
        assert received.withheld == ()
        assert received.disclosure_seq >= 0
        assert received.records_request["holder_org_id"] == str(vsp)

        suspension = await investigator.suspend_accounting(
            asked["id"], document_sha256=DOC, until=world.clock.now() + timedelta(days=30)
        )
        assert suspension["document_sha256"] == DOC

        duties = await caseworker.list_obligations()
        duty = next(d for d in duties if d["request_id"] == asked["id"])
        done = await caseworker.complete_obligation(
            duty["id"], how="phone", done_at=world.clock.now()
        )
        assert done["done_how"] == "phone"
        assert await caseworker.list_obligations() == []
        assert [d["id"] for d in await caseworker.list_obligations(include_done=True)] == [
            duty["id"]
        ]
        assert str(police) == asked["requester_org_id"]


async def test_an_emergency_release_is_reviewed_and_a_refusal_carries_its_note(
    app: Any, world: World
) -> None:
    keys = await law_enforcement_kit(app, world)
    async with (
        client(app, world, "vsp", Role.supervisor, sub="sup-lee") as releasing,
        client(app, world, "vsp", Role.supervisor, sub="sup-okafor") as reviewing,
        client(app, world, "police", Role.investigator) as investigator,
    ):
        subject = await releasing.create_subject()
        urgent = await investigator.create_records_request(
            holder_org_id=world.orgs["vsp"],
            subject_ref=subject["id"],
            categories=["location"],
            purpose="emergency_contact",
            legal_basis="emergency",
            justification="Credible threat to the survivor's life tonight",
        )
        await releasing.answer_records_request(
            urgent["id"],
            keys=keys["vsp"],
            subject_id=subject["id"],
            fields=[PlainField(name="location", category="location", value="Unit 9")],
        )
        queue = await reviewing.list_reviews()
        review = next(r for r in queue if r["request_id"] == urgent["id"])
        closed = await reviewing.close_review(
            review["id"], finding="justified", survivor_notified=True
        )
        assert closed["finding"] == "justified"
        assert await reviewing.list_reviews() == []
        assert len(await reviewing.list_reviews(include_closed=True)) == 1

        other = await investigator.create_records_request(
            holder_org_id=world.orgs["vsp"],
            subject_ref=subject["id"],
            categories=["identity"],
            purpose="investigation",
            legal_basis="consent",
            justification="Witness in a labor trafficking investigation",
        )
        refused = await releasing.respond_records_request(
            other["id"], decision="refuse", note="no consent on file"
        )
        assert refused["status"] == "refused"
        assert (await investigator.get_records_request(other["id"]))["response_note"] == (
            "no consent on file"
        )
