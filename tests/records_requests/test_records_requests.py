"""Records requests on both engines (issue 7; SECURITY-TESTS B07, B09, B11, C01, C13,
C14, G07): the preliminary answer from policy alone, each legal basis allowed and
refused with the policies named, answers checked field by field, delivery decided
again and audited, obligations and emergency reviews."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.auth.principals import Role
from service.records_requests.models import RecordsRequestField
from service.retention import run_sweep
from service.settings import Settings
from tests.records_requests.support import DOC, VALUES, RequestKit, make_request_kit
from tests.support.databases import TestDatabase
from tests.support.world import World


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    return await make_request_kit(client, world)


def outcomes(made: dict[str, Any]) -> dict[str, str]:
    return {p["category"]: p["outcome"] for p in made["preliminary"]}


async def test_preliminary_is_byte_identical_with_or_without_a_subject_or_consent(
    kit: RequestKit,
) -> None:
    """A request cannot be used to learn that someone is a client."""
    asked = {"categories": ["identity", "contact", "substance_use"], "subject_ref": "REF-1"}
    before = await kit.made(**asked)
    subject = await kit.subject()
    await kit.consent(subject, ["identity", "contact", "substance_use"])
    after_consent = await kit.made(**{**asked, "subject_ref": subject})
    unknown = await kit.made(**{**asked, "subject_ref": "NO-SUCH-PERSON"})
    dumps = {json.dumps(m["preliminary"], sort_keys=True) for m in (before, after_consent, unknown)}
    assert len(dumps) == 1
    assert outcomes(before) == {
        "identity": "needs_consent",
        "contact": "needs_consent",
        "substance_use": "needs_consent",
    }


async def test_C13_subpoena_never_releases_substance_use_or_counseling_notes(
    kit: RequestKit,
) -> None:
    made = await kit.made(
        legal_basis="subpoena",
        legal_reference="SUB-2026-17",
        document_sha256=DOC,
        categories=["substance_use", "counseling_notes", "contact"],
    )
    result = outcomes(made)
    assert result == {
        "substance_use": "never",
        "counseling_notes": "never",
        "contact": "needs_consent",
    }
    policies = {p["category"]: p["policies"] for p in made["preliminary"]}
    assert "subpoena-never-privileged-or-explicit" in policies["substance_use"]
    assert "privileged-never-to-enforcement-or-government" in policies["counseling_notes"]


async def test_C01_counseling_notes_never_to_law_enforcement_under_any_basis(
    kit: RequestKit,
) -> None:
    for basis, extra in (
        ("consent", {}),
        ("court_order", {"legal_reference": "2026-CR-42", "document_sha256": DOC}),
        ("emergency", {}),
    ):
        made = await kit.made(legal_basis=basis, categories=["counseling_notes"], **extra)
        assert outcomes(made) == {"counseling_notes": "never"}, basis


async def test_C13_court_order_without_document_or_reference_is_422_and_stores_nothing(
    kit: RequestKit, db: TestDatabase
) -> None:
    before = db.dump()
    r = await kit.request(legal_basis="court_order")
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"/legal_reference", "/document_sha256"}
    r = await kit.request(legal_basis="mandated_report")
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} == {"/legal_reference"}
    assert db.dump() == before


async def test_court_order_allows_non_privileged_and_mandated_report_only_to_named_sectors(
    kit: RequestKit,
) -> None:
    order = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256=DOC,
        categories=["identity", "location"],
    )
    assert outcomes(order) == {"identity": "allowed", "location": "allowed"}
    assert order["preliminary"][0]["policies"] == ["court-order-non-privileged"]
    police = await kit.made(
        legal_basis="mandated_report",
        legal_reference="State Code 26.44.030",
        categories=["children", "identity"],
    )
    assert outcomes(police) == {"children": "allowed", "identity": "allowed"}
    prosecutor = await kit.made(
        "prosecutor",
        purpose="prosecution",
        legal_basis="mandated_report",
        legal_reference="State Code 26.44.030",
        categories=["children"],
    )
    assert outcomes(prosecutor) == {"children": "needs_consent"}


async def test_B09_caseworker_cannot_request_and_B11_preliminary_cannot_be_assigned(
    kit: RequestKit, db: TestDatabase
) -> None:
    before = db.dump()
    r = await kit.client.post(
        "/v1/records-requests", json=kit.body(), headers=kit.staff("vsp", Role.caseworker)
    )
    assert r.status_code == 403
    forged = kit.body(preliminary=[{"category": "identity", "outcome": "allowed"}])
    r = await kit.client.post(
        "/v1/records-requests", json=forged, headers=kit.staff("police", Role.investigator)
    )
    assert r.status_code == 422
    assert any(e["path"].endswith("preliminary") for e in r.json()["errors"])
    assert db.dump() == before


async def test_consent_basis_full_loop_and_answer_outside_the_request_is_422(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made()
    subject = await kit.subject()
    consent = await kit.consent(subject, ["identity", "contact"])
    # A category the request did not ask for: 422 naming the field, nothing stored.
    before = db.dump()
    wider = kit.seal(made, subject, {**VALUES}, consent_id=consent)
    r = await kit.respond(
        made["id"], {"decision": "release", "consent_id": consent, "envelope": wider}
    )
    assert r.status_code == 422
    assert [e["path"] for e in r.json()["errors"]] == ["/envelope/fields/location"]
    assert db.dump() == before
    # Without the consent id on a consent basis: 422.
    envelope = kit.seal(made, subject, {"identity": VALUES["identity"]}, consent_id=consent)
    r = await kit.respond(made["id"], {"decision": "release", "envelope": envelope})
    assert r.status_code == 422
    assert db.dump() == before
    answer = {
        "identity": VALUES["identity"],
        "contact": VALUES["contact"],
    }
    envelope = kit.seal(made, subject, answer, consent_id=consent)
    r = await kit.respond(
        made["id"], {"decision": "release", "consent_id": consent, "envelope": envelope}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "released"
    assert "justification" in r.json()
    # Answered once only.
    again = await kit.respond(made["id"], {"decision": "refuse", "note": "changed my mind"})
    assert again.status_code == 409
    delivery = await kit.deliver(made["id"])
    assert delivery.status_code == 200, delivery.text
    opened = kit.open(delivery.json())
    assert dict(opened.values) == answer
    assert VALUES["identity"] not in db.dump()
    # The disclosure is in the survivor's accounting.
    accounting = await kit.client.get(
        f"/v1/subjects/{subject}/disclosures", headers=kit.staff("vsp")
    )
    assert accounting.status_code == 200
    assert str(kit.world.orgs["police"]) in accounting.text
    # Revoking the consent: the next delivery withholds everything.
    r = await kit.client.post(
        f"/v1/consents/{consent}/revoke", json={"reason": "withdrawn"}, headers=kit.staff("vsp")
    )
    assert r.status_code == 200
    later = (await kit.deliver(made["id"])).json()
    assert later["released"] == []
    assert {w["name"] for w in later["withheld"]} == set(answer)


async def test_refuse_needs_a_note_and_the_requester_sees_it(kit: RequestKit) -> None:
    made = await kit.made()
    r = await kit.respond(made["id"], {"decision": "refuse"})
    assert r.status_code == 422
    r = await kit.respond(made["id"], {"decision": "refuse", "note": "No such client record"})
    assert r.status_code == 200
    seen = await kit.client.get(
        f"/v1/records-requests/{made['id']}", headers=kit.staff("police", Role.investigator)
    )
    assert seen.json()["status"] == "refused"
    assert seen.json()["response_note"] == "No such client record"
    assert (await kit.deliver(made["id"])).status_code == 409


async def test_B07_another_agency_gets_404_and_B03_lists_stay_empty(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made()
    other = kit.staff("prosecutor", Role.prosecutor)
    before = db.dump()
    assert (
        await kit.client.get(f"/v1/records-requests/{made['id']}", headers=other)
    ).status_code == 404
    for action, body in (("deliver", None), ("respond", {"decision": "refuse", "note": "x"})):
        r = await kit.client.post(
            f"/v1/records-requests/{made['id']}/{action}", json=body, headers=other
        )
        assert r.status_code == 404, action
    for box in ("made", "received"):
        r = await kit.client.get(f"/v1/records-requests?box={box}", headers=other)
        assert r.json()["items"] == []
    assert db.dump() == before
    mine = await kit.client.get(
        "/v1/records-requests?box=received", headers=kit.staff("vsp", Role.caseworker)
    )
    assert [i["id"] for i in mine.json()["items"]] == [made["id"]]


async def test_obligation_on_a_court_ordered_release_overdue_then_done(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256=DOC,
        categories=["location"],
    )
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"location": VALUES["location"]})
    r = await kit.respond(made["id"], {"decision": "release", "envelope": envelope})
    assert r.status_code == 200, r.text
    staff = kit.staff("vsp", Role.supervisor)
    # Nothing was disclosed yet: the duty starts with the first delivery that releases.
    assert (await kit.client.get("/v1/obligations", headers=staff)).json()["items"] == []
    delivered = await kit.deliver(made["id"])
    assert delivered.status_code == 200, delivered.text
    assert (await kit.deliver(made["id"])).status_code == 200  # no second obligation
    listed = (await kit.client.get("/v1/obligations", headers=staff)).json()["items"]
    assert len(listed) == 1
    assert listed[0]["kind"] == "notify_survivor"
    assert listed[0]["overdue"] is False
    auditor = kit.staff("vsp", Role.auditor)
    r = await kit.client.get("/v1/obligations", headers=auditor)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    kit.world.clock.advance(Settings().obligation_notify_days * 86400)
    staff = kit.staff("vsp", Role.supervisor)  # fresh tokens at the new time
    auditor = kit.staff("vsp", Role.auditor)
    listed = (await kit.client.get("/v1/obligations", headers=staff)).json()["items"]
    assert listed[0]["overdue"] is True
    overdue = (await kit.client.get("/v1/obligations", headers=auditor)).json()["items"]
    assert [o["id"] for o in overdue] == [listed[0]["id"]]
    outsider = kit.staff("unrelated", Role.supervisor)
    assert (await kit.client.get("/v1/obligations", headers=outsider)).json()["items"] == []
    before = db.dump()
    too_early = (kit.world.clock.now() - timedelta(days=30)).isoformat()
    r = await kit.client.post(
        f"/v1/obligations/{listed[0]['id']}/done",
        json={"how": "phone", "done_at": too_early},
        headers=staff,
    )
    assert r.status_code == 422
    assert db.dump() == before
    done = await kit.client.post(
        f"/v1/obligations/{listed[0]['id']}/done",
        json={"how": "phone", "done_at": kit.world.clock.now().isoformat()},
        headers=staff,
    )
    assert done.status_code == 200, done.text
    assert done.json()["done_how"] == "phone"
    assert (await kit.client.get("/v1/obligations", headers=staff)).json()["items"] == []
    again = await kit.client.post(
        f"/v1/obligations/{listed[0]['id']}/done",
        json={"how": "phone", "done_at": kit.world.clock.now().isoformat()},
        headers=staff,
    )
    assert again.status_code == 409


async def test_C14_emergency_release_review_queue(kit: RequestKit, db: TestDatabase) -> None:
    made = await kit.made(
        purpose="emergency_contact", legal_basis="emergency", categories=["location"]
    )
    assert outcomes(made) == {"location": "allowed"}
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"location": VALUES["location"]})
    before = db.dump()
    r = await kit.respond(made["id"], {"decision": "release", "envelope": envelope})
    assert r.status_code == 403  # a caseworker cannot
    assert db.dump() == before
    r = await kit.respond(
        made["id"], {"decision": "release", "envelope": envelope}, Role.supervisor, "sam"
    )
    assert r.status_code == 200, r.text
    sam = kit.staff("vsp", Role.supervisor, sub="sam")
    queue = (await kit.client.get("/v1/reviews", headers=sam)).json()["items"]
    assert len(queue) == 1
    assert queue[0]["released_by"] == "sam"
    close = {"finding": "justified", "survivor_notified": True}
    own = await kit.client.post(f"/v1/reviews/{queue[0]['id']}/close", json=close, headers=sam)
    assert own.status_code == 403  # not one's own release
    pat = kit.staff("vsp", Role.supervisor, sub="pat")
    missing_reason = {"finding": "justified", "survivor_notified": False}
    r = await kit.client.post(
        f"/v1/reviews/{queue[0]['id']}/close", json=missing_reason, headers=pat
    )
    assert r.status_code == 422
    r = await kit.client.post(f"/v1/reviews/{queue[0]['id']}/close", json=close, headers=pat)
    assert r.status_code == 200, r.text
    assert r.json()["closed_by"] == "pat"
    second = await kit.client.post(f"/v1/reviews/{queue[0]['id']}/close", json=close, headers=pat)
    assert second.status_code == 409
    assert (await kit.client.get("/v1/reviews", headers=pat)).json()["items"] == []
    caseworker = kit.staff("vsp", Role.caseworker)
    assert (await kit.client.get("/v1/reviews", headers=caseworker)).status_code == 403
    delivery = await kit.deliver(made["id"])
    assert dict(kit.open(delivery.json()).values) == {"location": VALUES["location"]}


async def test_C14_emergency_case_summary_is_refused_with_the_policy(kit: RequestKit) -> None:
    made = await kit.made(
        purpose="emergency_contact", legal_basis="emergency", categories=["case_summary"]
    )
    assert outcomes(made) == {"case_summary": "needs_consent"}
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"case_summary": "planted summary"})
    r = await kit.respond(
        made["id"], {"decision": "release", "envelope": envelope}, Role.supervisor
    )
    assert r.status_code == 422
    error = r.json()["errors"][0]
    assert error["path"] == "/envelope/fields/case_summary"


async def test_G07_records_requests_are_rate_limited_per_principal(
    kit: RequestKit, db: TestDatabase
) -> None:
    allowed = int(Settings().rate_limit_records_requests.split("/")[0])
    for _ in range(allowed):
        assert (await kit.request()).status_code == 201
    before = db.dump()
    refused = await kit.request()
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert db.dump() == before


async def test_accounting_suspension_hides_the_disclosure_until_it_ends(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256=DOC,
        categories=["location"],
    )
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"location": VALUES["location"]})
    assert (
        await kit.respond(made["id"], {"decision": "release", "envelope": envelope})
    ).status_code == 200
    assert (await kit.deliver(made["id"])).status_code == 200

    async def accounted() -> list[Any]:
        r = await kit.client.get(f"/v1/subjects/{subject}/disclosures", headers=kit.staff("vsp"))
        assert r.status_code == 200, r.text
        items: list[Any] = r.json()["items"]
        return items

    assert len(await accounted()) == 1
    url = f"/v1/records-requests/{made['id']}/suspension"
    until = kit.world.clock.now() + timedelta(days=30)
    body = {"document_sha256": DOC, "until": until.isoformat()}
    # Only the requesting agency; the holder cannot, another agency sees nothing.
    before = db.dump()
    assert (await kit.client.post(url, json=body, headers=kit.staff("vsp"))).status_code == 403
    other = kit.staff("prosecutor", Role.prosecutor)
    assert (await kit.client.post(url, json=body, headers=other)).status_code == 404
    too_long = {**body, "until": (kit.world.clock.now() + timedelta(days=4000)).isoformat()}
    investigator = kit.staff("police", Role.investigator)
    assert (await kit.client.post(url, json=too_long, headers=investigator)).status_code == 422
    assert db.dump() == before
    r = await kit.client.post(url, json=body, headers=investigator)
    assert r.status_code == 201, r.text
    assert await accounted() == []
    kit.world.clock.advance(timedelta(days=30).total_seconds())
    assert len(await accounted()) == 1  # it ended by itself


async def test_C13_releasing_substance_use_on_a_subpoena_is_422_naming_the_policy(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made(
        legal_basis="subpoena",
        legal_reference="SUB-2026-17",
        document_sha256=DOC,
        categories=["substance_use"],
    )
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"substance_use": "planted treatment record"})
    before = db.dump()
    r = await kit.respond(made["id"], {"decision": "release", "envelope": envelope})
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["path"] == "/envelope/fields/substance_use"
    assert "subpoena-never-privileged-or-explicit" in error["policies"]
    assert db.dump() == before


async def test_D11_two_supervisors_closing_the_same_review_one_wins(kit: RequestKit) -> None:
    made = await kit.made(
        purpose="emergency_contact", legal_basis="emergency", categories=["contact"]
    )
    subject = await kit.subject()
    envelope = kit.seal(made, subject, {"contact": VALUES["contact"]})
    r = await kit.respond(
        made["id"], {"decision": "release", "envelope": envelope}, Role.supervisor, "sam"
    )
    assert r.status_code == 200, r.text
    pat, kim = (kit.staff("vsp", Role.supervisor, sub=s) for s in ("pat", "kim"))
    [review] = (await kit.client.get("/v1/reviews", headers=pat)).json()["items"]
    close = {"finding": "justified", "survivor_notified": True}
    url = f"/v1/reviews/{review['id']}/close"
    first, second = await asyncio.gather(
        kit.client.post(url, json=close, headers=pat),
        kit.client.post(url, json=close, headers=kim),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]


async def _answer_bytes(app: Any, request_id: str) -> list[bool]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(RecordsRequestField).where(
                RecordsRequestField.request_id == uuid.UUID(request_id)
            )
        )
        return [r.ciphertext is not None and r.sealed_key is not None for r in rows.all()]


async def test_answers_are_shredded_on_revocation_and_by_the_retention_sweep(
    kit: RequestKit, app: Any
) -> None:
    # A consent answer, revoked before delivery: its sealed keys are destroyed at once.
    made = await kit.made(categories=["contact"])
    subject = await kit.subject()
    consent = await kit.consent(subject, ["contact"])
    envelope = kit.seal(made, subject, {"contact": VALUES["contact"]}, consent_id=consent)
    body = {"decision": "release", "consent_id": consent, "envelope": envelope}
    assert (await kit.respond(made["id"], body)).status_code == 200
    assert await _answer_bytes(app, made["id"]) == [True]
    r = await kit.client.post(
        f"/v1/consents/{consent}/revoke", json={"reason": "withdrawn"}, headers=kit.staff("vsp")
    )
    assert r.status_code == 200
    assert await _answer_bytes(app, made["id"]) == [False]
    assert (await kit.deliver(made["id"])).json()["released"] == []
    # A court-ordered answer, delivered: the sweep destroys it after the retention.
    ordered = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256=DOC,
        categories=["location"],
    )
    envelope = kit.seal(ordered, subject, {"location": VALUES["location"]})
    assert (
        await kit.respond(ordered["id"], {"decision": "release", "envelope": envelope})
    ).status_code == 200
    assert (await kit.deliver(ordered["id"])).status_code == 200
    retention = timedelta(days=Settings().referral_retention_days)
    clock = kit.world.clock
    assert await run_sweep(app.state.sessionmaker, retention=retention, clock=clock) == []
    clock.advance(retention.total_seconds())
    swept = await run_sweep(app.state.sessionmaker, retention=retention, clock=clock)
    assert [str(i) for i in swept] == [ordered["id"]]
    assert await _answer_bytes(app, ordered["id"]) == [False]
    assert await run_sweep(app.state.sessionmaker, retention=retention, clock=clock) == []
    later = (await kit.deliver(ordered["id"])).json()
    assert later["released"] == []
    assert later["withheld"][0]["policies"] == ["crypto-shredded"]


async def test_answers_never_delivered_expire_and_leave_no_bytes(
    kit: RequestKit, app: Any, db: TestDatabase
) -> None:
    """Abandonment (issue 23): a released answer never delivered within the
    abandonment time becomes `expired`, its bytes leave the raw storage (both
    engines), both parties are told, and it can no longer be delivered."""
    from service.records_requests.models import RecordsRequest
    from tests.referrals.test_sweep_raw_storage import raw_storage, settled_raw_storage

    subject = await kit.subject()
    ordered = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-43",
        document_sha256=DOC,
        categories=["location"],
    )
    envelope = kit.seal(ordered, subject, {"location": VALUES["location"]})
    assert (
        await kit.respond(ordered["id"], {"decision": "release", "envelope": envelope})
    ).status_code == 200
    async with app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(RecordsRequestField).where(
                    RecordsRequestField.request_id == uuid.UUID(ordered["id"])
                )
            )
        ).all()
    secrets = [b for r in rows for b in (r.ciphertext, r.sealed_key) if b is not None]
    assert secrets
    held = await raw_storage(app, db)
    assert all(s in held for s in secrets)
    retention, after = timedelta(days=7), timedelta(days=30)
    clock = kit.world.clock
    clock.advance(after.total_seconds() - 1)
    sweep = {"retention": retention, "clock": clock, "abandon_after": after}
    assert await run_sweep(app.state.sessionmaker, **sweep) == []
    clock.advance(1)
    swept = await run_sweep(app.state.sessionmaker, **sweep)
    assert [str(i) for i in swept] == [ordered["id"]]
    assert await _answer_bytes(app, ordered["id"]) == [False]
    raw = await settled_raw_storage(app, db, secrets)
    assert [s for s in secrets if s in raw] == []
    async with app.state.sessionmaker() as session:
        request = await session.get(RecordsRequest, uuid.UUID(ordered["id"]))
        assert request is not None
        assert request.status == "expired"
    assert (await kit.deliver(ordered["id"])).status_code == 409
    assert await run_sweep(app.state.sessionmaker, **sweep) == []
    for org, role in (("police", Role.investigator), ("vsp", Role.caseworker)):
        r = await kit.client.get("/v1/events?after=0&limit=200", headers=kit.staff(org, role))
        assert r.status_code == 200, r.text
        kinds = [e["type"] for e in r.json()["items"] if e["object_id"] == ordered["id"]]
        assert "records_request.expired" in kinds


async def test_D11_concurrent_first_deliveries_open_one_obligation(kit: RequestKit) -> None:
    made = await kit.made(
        legal_basis="subpoena",
        legal_reference="SUB-2026-17",
        document_sha256=DOC,
        categories=["contact"],
    )
    subject = await kit.subject()
    consent = await kit.consent(subject, ["contact"])
    envelope = kit.seal(made, subject, {"contact": VALUES["contact"]}, consent_id=consent)
    body = {"decision": "release", "consent_id": consent, "envelope": envelope}
    assert (await kit.respond(made["id"], body)).status_code == 200
    first, second = await asyncio.gather(kit.deliver(made["id"]), kit.deliver(made["id"]))
    assert (first.status_code, second.status_code) == (200, 200)
    staff = kit.staff("vsp", Role.supervisor)
    [duty] = (await kit.client.get("/v1/obligations", headers=staff)).json()["items"]
    assert duty["request_id"] == made["id"]
    assert duty["kind"] == "notify_survivor"
