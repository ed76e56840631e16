"""The async client against the real app on both engines: consent lifecycle,
pagination, problem details, and the referral helpers (seal, deliver, open)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from accord_client.api import AsyncAccordClient
from accord_client.api_models import (
    AuthenticationError,
    ConsentDraft,
    NotFoundError,
    UnprocessableError,
)
from accord_client.envelope import PlainField
from accord_client.keys import generate_organization_keys
from sqlalchemy import select

from service.auth.principals import Role
from service.subjects.models import Subject
from tests.client.conftest import async_client
from tests.support.databases import TestDatabase
from tests.support.world import World


def draft(world: World, **change: Any) -> ConsentDraft:
    values: dict[str, Any] = {
        "recipients": (str(world.orgs["shelter"]),),
        "purposes": ("services_referral",),
        "categories": ("contact", "needs"),
        "expires_at": world.clock.now() + timedelta(days=90),
        "method": "written",
        "language": "es-MX",
        "evidence_sha256": "ab" * 32,
    }
    values.update(change)
    return ConsentDraft(**values)


async def test_consent_lifecycle_through_the_async_client(
    api: AsyncAccordClient, world: World
) -> None:
    subject = await api.create_subject()
    first = await api.create_consent(subject["id"], draft(world))
    assert first["version"] == 1
    assert first["live"] is True
    second = await api.amend_consent(first["id"], draft(world, categories=("contact",)))
    assert second["supersedes"] == first["id"]
    assert second["version"] == 2
    listed = await api.list_consents(subject["id"])
    assert [c["id"] for c in listed] == [second["id"], first["id"]]  # newest first
    assert listed[1]["superseded"] is True
    revoked = await api.revoke_consent(second["id"], reason="survivor asked")
    assert revoked["revoked_at"] is not None
    assert revoked["live"] is False
    assert (await api.get_consent(second["id"]))["revoked_at"] is not None
    receipt = await api.get_consent_receipt(second["id"])
    assert receipt
    fhir = await api.get_consent_fhir(second["id"])
    assert fhir["resourceType"] == "Consent"
    disclosures = await api.list_disclosures(subject["id"])
    assert disclosures["items"] == []


async def test_a_rule_violation_is_a_422_with_every_path_and_nothing_stored(
    api: AsyncAccordClient, world: World, db: TestDatabase
) -> None:
    subject = await api.create_subject()
    before = db.dump()
    planted_ref = "AB" * 32  # breaks the lowercase-hex rule; must not be echoed
    bad = draft(
        world,
        language="x",
        given_by="legal_representative",
        giver_ref=planted_ref,
    )
    with pytest.raises(UnprocessableError) as caught:
        await api.create_consent(subject["id"], bad)
    exc = caught.value
    assert exc.status == 422
    assert exc.problem.type.endswith("rule-violation")  # its URI is the service's choice
    assert exc.problem.title
    paths = {item.path for item in exc.problem.errors}
    assert {"/language", "/giver_ref"} <= paths
    for text in (str(exc), repr(exc), repr(exc.problem)):
        assert planted_ref not in text
        assert planted_ref.lower() not in text
    assert db.dump() == before


async def test_not_found_and_bad_token_raise_typed_errors(
    app: Any, api: AsyncAccordClient, world: World
) -> None:
    with pytest.raises(NotFoundError):
        await api.get_consent("00000000-0000-4000-8000-000000000000")
    async with AsyncAccordClient(
        base_url="http://accord.test",
        token="not-a-jwt",
        transport=httpx.ASGITransport(app=app),
    ) as anonymous:
        with pytest.raises(AuthenticationError) as caught:
            await anonymous.get_policies()
    assert caught.value.status == 401
    assert "not-a-jwt" not in str(caught.value)


async def test_pagination_follows_next_cursor_across_pages(
    api: AsyncAccordClient, world: World
) -> None:
    first = await api.list_organizations(limit=2)
    assert len(first.items) == 2
    assert first.next_cursor is not None
    everything = [o["id"] async for o in api.iter_organizations(page_size=2)]
    one_page = [o["id"] for o in (await api.list_organizations(limit=100)).items]
    assert everything == one_page
    assert len(everything) == len(set(everything)) == len(world.orgs)
    shelters = [o["id"] async for o in api.iter_organizations(sector="shelter", page_size=1)]
    assert shelters == [str(world.orgs["shelter"])]


async def test_audit_entries_iterate_by_after_seq(
    app: Any, api: AsyncAccordClient, world: World
) -> None:
    subject = await api.create_subject()
    await api.create_consent(subject["id"], draft(world))
    async with async_client(app, world, "oversight", Role.auditor) as auditor:
        everything = [e async for e in auditor.iter_audit_entries(page_size=1)]
        one_page = (await auditor.list_audit_entries(limit=100)).items
        checkpoint = await auditor.get_audit_checkpoint()
    assert len(everything) >= 2
    assert everything == one_page
    assert checkpoint["tree_size"] >= len(everything)


async def test_policy_set_and_explain(api: AsyncAccordClient, world: World) -> None:
    policies = await api.get_policies()
    assert policies["version"]
    explained = await api.explain_policy(
        recipient_org_id=world.orgs["shelter"],
        purpose="services_referral",
        legal_basis="consent",
        categories=["contact"],
    )
    assert [d["category"] for d in explained["decisions"]] == ["contact"]


async def test_send_and_receive_a_referral_with_directory_keys(app: Any, world: World) -> None:
    vsp_keys = generate_organization_keys(str(world.orgs["vsp"]))
    shelter_keys = generate_organization_keys(str(world.orgs["shelter"]))
    async with async_client(app, world, "vsp", Role.org_admin) as admin:
        await admin.register_keys(world.orgs["vsp"], vsp_keys)
    async with async_client(app, world, "shelter", Role.org_admin) as admin:
        await admin.register_keys(world.orgs["shelter"], shelter_keys)
    async with async_client(app, world, "vsp") as sender:
        subject = await sender.create_subject()
        consent = await sender.create_consent(
            subject["id"], draft(world, categories=("contact", "needs"))
        )
        referral = await sender.send_referral(
            keys=vsp_keys,
            recipient_org_id=world.orgs["shelter"],
            subject_id=subject["id"],
            consent_id=consent["id"],
            purpose="services_referral",
            fields=[
                PlainField(name="phone", category="contact", value="+1-555-0100"),
                PlainField(name="needs", category="needs", value="a bed tonight"),
            ],
            services_requested=["emergency_shelter"],
            urgency="urgent",
        )
        assert referral["status"] == "sent"
        sent = [r["id"] async for r in sender.iter_referrals(box="sent", page_size=1)]
        assert sent == [referral["id"]]
    async with async_client(app, world, "shelter") as recipient:
        received = await recipient.receive_referral(referral["id"], shelter_keys)
        assert dict(received.opened.values) == {"needs": "a bed tonight", "phone": "+1-555-0100"}
        assert "a bed tonight" not in repr(received)
        accepted = await recipient.accept_referral(referral["id"])
        assert accepted["status"] == "accepted"
        closed = await recipient.close_referral(referral["id"], outcome="services_provided")
        assert closed["status"] == "closed"


class LostFirstResponse(httpx.AsyncBaseTransport):
    """Forwards every request to the app, but loses the first response (the create
    is committed, the client sees a read timeout), as a flaky network would."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        response = await self._inner.handle_async_request(request)
        if self.calls == 1:
            await response.aread()
            raise httpx.ReadTimeout("response lost", request=request)
        return response


async def test_a_create_whose_response_was_lost_is_retried_into_one_object(
    app: Any, world: World
) -> None:
    transport = LostFirstResponse(app)
    async with async_client(app, world, transport=transport) as client:
        subject = await client.create_subject()
        ids = (await client.create_subject(idempotency_key="second"))["id"]
    assert transport.calls == 3  # lost, replayed (200), then one more create
    async with app.state.sessionmaker() as session:
        stored = {str(i) for i in (await session.scalars(select(Subject.id))).all()}
    # The lost create was committed once and replayed, not made twice.
    assert stored == {subject["id"], ids}
