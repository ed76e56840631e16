"""Each legal basis of a records request, allowed and refused, through the whole
path (issue 7; SECURITY-TESTS C01, C13, C14): the preliminary answer names the
deciding policy, the holder's answer is 200 or a 422 naming every denied field with
its policies (nothing stored), and an allowed answer is delivered and opened. A
consent may accompany any basis: it is what turns a preliminary `needs_consent`
into a release, and it never overrides a forbid (a subpoena never releases
substance_use, whatever consent is on file)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from tests.records_requests.support import DOC, RequestKit, make_request_kit
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World

ORDER = {"legal_reference": "2026-CR-42", "document_sha256": DOC}
STATUTE = {"legal_reference": "State Code 26.44.030"}


@dataclass(frozen=True)
class Case:
    basis: str
    categories: list[str]
    preliminary: str  # the outcome of every category asked
    status: int  # of the holder's answer
    policies: list[str]  # the preliminary's (allowed) or the 422's (refused), each field
    # The holder answers with a consent naming these categories (True: those asked).
    consent: bool | list[str] = False
    requester: str = "police"
    purpose: str = "investigation"
    responder: Role = Role.caseworker
    extra: dict[str, str] = field(default_factory=dict)


CASES = {
    "consent-allowed": Case(
        "consent", ["contact"], "needs_consent", 200, ["consent-covers-release"], consent=True
    ),
    "consent-refused-without-a-covering-consent": Case(
        "consent", ["contact"], "needs_consent", 422, ["default-deny"], consent=["identity"]
    ),
    "court_order-allowed": Case(
        "court_order", ["location"], "allowed", 200, ["court-order-non-privileged"], extra=ORDER
    ),
    "court_order-with-a-named-consent-releases-substance_use": Case(
        "court_order",
        ["substance_use"],
        "needs_consent",
        200,
        ["consent-covers-release"],
        consent=True,
        extra=ORDER,
    ),
    "court_order-refused-privileged": Case(
        "court_order",
        ["counseling_notes"],
        "never",
        422,
        ["privileged-never-to-enforcement-or-government"],
        consent=True,
        extra=ORDER,
    ),
    "subpoena-with-a-consent-allowed": Case(
        "subpoena",
        ["contact"],
        "needs_consent",
        200,
        ["consent-covers-release"],
        consent=True,
        extra=ORDER,
    ),
    "subpoena-alone-refused": Case(
        "subpoena", ["contact"], "needs_consent", 422, ["default-deny"], extra=ORDER
    ),
    "subpoena-substance_use-refused-even-with-a-named-consent": Case(
        "subpoena",
        ["substance_use"],
        "never",
        422,
        ["subpoena-never-privileged-or-explicit"],
        consent=True,
        extra=ORDER,
    ),
    "mandated_report-allowed-to-police": Case(
        "mandated_report",
        ["children"],
        "allowed",
        200,
        ["mandated-report-to-child-welfare-or-police"],
        extra=STATUTE,
    ),
    "mandated_report-refused-to-prosecution": Case(
        "mandated_report",
        ["children"],
        "needs_consent",
        422,
        ["default-deny"],
        requester="prosecutor",
        purpose="prosecution",
        extra=STATUTE,
    ),
    "emergency-allowed-by-a-supervisor": Case(
        "emergency",
        ["contact"],
        "allowed",
        200,
        ["emergency-supervisor-safety-categories"],
        purpose="emergency_contact",
        responder=Role.supervisor,
    ),
    "emergency-refused-case_summary": Case(
        "emergency",
        ["case_summary"],
        "needs_consent",
        422,
        ["default-deny"],
        purpose="emergency_contact",
        responder=Role.supervisor,
    ),
}


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    return await make_request_kit(client, world)


async def audit_bodies(app: Any, action: str) -> list[dict[str, Any]]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
        return [json.loads(e.body) for e in rows.all()]


@pytest.mark.parametrize("name", list(CASES))
async def test_each_legal_basis_allowed_and_refused_with_the_policies_named(
    name: str, kit: RequestKit, db: TestDatabase, app: Any
) -> None:
    case = CASES[name]
    made = await kit.made(
        case.requester,
        legal_basis=case.basis,
        categories=case.categories,
        purpose=case.purpose,
        **case.extra,
    )
    assert {p["outcome"] for p in made["preliminary"]} == {case.preliminary}
    subject = await kit.subject()
    consent = None
    if case.consent:
        _, grant = await new_consent(
            kit.client,
            kit.world,
            subject=subject,
            categories=case.categories if case.consent is True else case.consent,
            recipients=[str(kit.world.orgs[case.requester])],
            purposes=[case.purpose],
        )
        consent = str(grant["id"])
    values = {c: f"planted {c} value" for c in case.categories}
    envelope = kit.seal(made, subject, values, consent_id=consent, requester=case.requester)
    body: dict[str, Any] = {"decision": "release", "envelope": envelope}
    if consent is not None:
        body["consent_id"] = consent
    before = db.dump()
    r = await kit.respond(made["id"], body, case.responder, sub="sam")
    assert r.status_code == case.status, r.text
    if case.status == 422:
        errors = r.json()["errors"]
        assert [e["path"] for e in errors] == [f"/envelope/fields/{c}" for c in case.categories]
        assert all(e["policies"] == case.policies for e in errors)
        assert all(e["reasons"] for e in errors)
        assert db.dump() == before
        return
    if case.preliminary == "allowed":
        assert all(p["policies"] == case.policies for p in made["preliminary"])
    delivery = await kit.deliver(made["id"], case.requester)
    assert delivery.status_code == 200, delivery.text
    assert dict(kit.open(delivery.json(), case.requester).values) == values
    [disclosure] = await audit_bodies(app, "disclosure")
    details = disclosure["details"]
    assert details["legal_basis"] == case.basis
    assert details["legal_reference"] == case.extra.get("legal_reference")
    assert details["withheld"] == []
    assert "planted" not in json.dumps(disclosure)


async def test_mandated_report_is_audited_with_its_statute(kit: RequestKit, app: Any) -> None:
    made = await kit.made(legal_basis="mandated_report", categories=["children"], **STATUTE)
    [created] = await audit_bodies(app, "request.created")
    assert created["details"]["legal_basis"] == "mandated_report"
    assert created["details"]["legal_reference"] == STATUTE["legal_reference"]
    assert created["details"]["justification_given"] is True
    assert kit.body()["justification"] not in json.dumps(created)
    assert made["legal_reference"] == STATUTE["legal_reference"]


async def test_a_consent_of_another_subject_is_422_and_stores_nothing(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made(categories=["contact"])
    subject, other = await kit.subject(), await kit.subject()
    consent = await kit.consent(other, ["contact"])
    envelope = kit.seal(made, subject, {"contact": "planted"}, consent_id=consent)
    before = db.dump()
    r = await kit.respond(
        made["id"], {"decision": "release", "consent_id": consent, "envelope": envelope}
    )
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["/consent_id"]
    assert db.dump() == before


async def test_a_revoked_consent_is_422_naming_the_fields(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made(categories=["contact"])
    subject = await kit.subject()
    consent = await kit.consent(subject, ["contact"])
    r = await kit.client.post(
        f"/v1/consents/{consent}/revoke", json={"reason": "withdrawn"}, headers=kit.staff("vsp")
    )
    assert r.status_code == 200
    envelope = kit.seal(made, subject, {"contact": "planted"}, consent_id=consent)
    before = db.dump()
    r = await kit.respond(
        made["id"], {"decision": "release", "consent_id": consent, "envelope": envelope}
    )
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["/envelope/fields/contact"]
    assert db.dump() == before
