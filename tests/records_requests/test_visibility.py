"""Who sees records requests, obligations and reviews (SECURITY-TESTS B03, B07, B17),
and the preliminary answer's bytes (DESIGN.md section 6: refusals must not reveal
that a record exists)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from tests.records_requests.support import DOC, VALUES, RequestKit, make_request_kit
from tests.support.databases import TestDatabase
from tests.support.world import World

PRELIMINARY = re.compile(rb'"preliminary":(\[.*\]),"policy_version":"[0-9a-f]{64}"')


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    return await make_request_kit(client, world)


async def second_agency(kit: RequestKit) -> uuid.UUID:
    r = await kit.client.post(
        "/v1/organizations",
        json={"name": "County sheriff", "sector": "law_enforcement"},
        headers=kit.world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 201, r.text
    return uuid.UUID(r.json()["id"])


def preliminary_bytes(response: httpx.Response) -> bytes:
    """The preliminary answer exactly as the server sent it, not re-encoded."""
    assert response.status_code == 201, response.text
    found = PRELIMINARY.search(response.content)
    assert found is not None
    return found.group(0)


@pytest.mark.parametrize(
    ("basis", "extra"),
    [("consent", {}), ("court_order", {"legal_reference": "2026-CR-42", "document_sha256": DOC})],
)
async def test_preliminary_bytes_identical_whether_or_not_a_subject_record_or_consent_exists(
    basis: str, extra: dict[str, str], kit: RequestKit
) -> None:
    asked: dict[str, Any] = {
        "legal_basis": basis,
        "categories": ["substance_use", "identity", "counseling_notes", "location"],
        **extra,
    }
    never_shared = preliminary_bytes(await kit.request(subject_ref="NEVER-SHARED-7", **asked))
    subject = await kit.subject()
    without_consent = preliminary_bytes(await kit.request(subject_ref=subject, **asked))
    await kit.consent(subject, ["substance_use", "identity", "counseling_notes", "location"])
    with_consent = preliminary_bytes(await kit.request(subject_ref=subject, **asked))
    assert never_shared == without_consent == with_consent
    # In the order asked, each with its policies sorted: deterministic bytes.
    items = json.loads(never_shared[len(b'"preliminary":') : never_shared.rindex(b"]") + 1])
    assert [i["category"] for i in items] == asked["categories"]
    assert all(i["policies"] == sorted(i["policies"]) and i["policies"] for i in items)


async def test_B07_an_investigator_of_another_agency_gets_404_everywhere(
    kit: RequestKit, db: TestDatabase
) -> None:
    made = await kit.made()
    subject = await kit.subject()
    consent = await kit.consent(subject, ["identity"])
    envelope = kit.seal(made, subject, {"identity": VALUES["identity"]}, consent_id=consent)
    r = await kit.respond(
        made["id"], {"decision": "release", "consent_id": consent, "envelope": envelope}
    )
    assert r.status_code == 200, r.text
    sheriff = kit.world.tokens.headers(await second_agency(kit), Role.investigator, sub="dep-1")
    before = db.dump()
    url = f"/v1/records-requests/{made['id']}"
    assert (await kit.client.get(url, headers=sheriff)).status_code == 404
    assert (await kit.client.post(f"{url}/deliver", headers=sheriff)).status_code == 404
    suspension = {"document_sha256": DOC, "until": kit.world.clock.now().isoformat()}
    r = await kit.client.post(f"{url}/suspension", json=suspension, headers=sheriff)
    assert r.status_code == 404
    for box in ("made", "received"):
        r = await kit.client.get(f"/v1/records-requests?box={box}", headers=sheriff)
        assert r.status_code == 200
        assert r.json() == {"items": [], "next_cursor": None}
    assert db.dump() == before
    # The requester's own investigators still see it.
    mine = kit.staff("police", Role.investigator, sub="det-2")
    assert (await kit.client.get(url, headers=mine)).status_code == 200


async def test_B17_review_and_obligation_queues_show_only_the_holders_items(
    kit: RequestKit, db: TestDatabase
) -> None:
    ordered = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256=DOC,
        categories=["location"],
    )
    urgent = await kit.made(
        purpose="emergency_contact", legal_basis="emergency", categories=["contact"]
    )
    subject = await kit.subject()
    for made, values in ((ordered, {"location": "Unit 9"}), (urgent, {"contact": "+1-555"})):
        envelope = kit.seal(made, subject, values)
        r = await kit.respond(
            made["id"], {"decision": "release", "envelope": envelope}, Role.supervisor, "sam"
        )
        assert r.status_code == 200, r.text
        assert (await kit.deliver(made["id"])).status_code == 200
    pat = kit.staff("vsp", Role.supervisor, sub="pat")
    [review] = (await kit.client.get("/v1/reviews", headers=pat)).json()["items"]
    [duty] = (await kit.client.get("/v1/obligations", headers=pat)).json()["items"]
    assert review["request_id"] == urgent["id"]
    assert duty["request_id"] == ordered["id"]
    # Another organization's supervisor (and the requester's staff) see none of them
    # and cannot act on them.
    before = db.dump()
    for outsider in (
        kit.staff("unrelated", Role.supervisor, sub="pat"),
        kit.staff("police", Role.supervisor, sub="pat"),
    ):
        assert (await kit.client.get("/v1/reviews", headers=outsider)).json()["items"] == []
        listed = await kit.client.get("/v1/obligations?include_done=true", headers=outsider)
        assert listed.json()["items"] == []
        close = {"finding": "justified", "survivor_notified": True}
        r = await kit.client.post(f"/v1/reviews/{review['id']}/close", json=close, headers=outsider)
        assert r.status_code == 404
        done = {"how": "phone", "done_at": kit.world.clock.now().isoformat()}
        r = await kit.client.post(f"/v1/obligations/{duty['id']}/done", json=done, headers=outsider)
        assert r.status_code == 404
    # The supervisor who released cannot review their own release.
    sam = kit.staff("vsp", Role.supervisor, sub="sam")
    close = {"finding": "justified", "survivor_notified": True}
    r = await kit.client.post(f"/v1/reviews/{review['id']}/close", json=close, headers=sam)
    assert r.status_code == 403
    assert db.dump() == before
    # The queue lists the review until another supervisor closes it, with a reason
    # when the survivor is not told.
    not_told = {
        "finding": "justified",
        "survivor_notified": False,
        "reason_not_notified": "Telling them now would alert the trafficker",
    }
    r = await kit.client.post(f"/v1/reviews/{review['id']}/close", json=not_told, headers=pat)
    assert r.status_code == 200, r.text
    assert r.json()["survivor_notified"] is False
    assert "reason_not_notified" not in r.json()
    assert (await kit.client.get("/v1/reviews", headers=pat)).json()["items"] == []
    closed = await kit.client.get("/v1/reviews?include_closed=true", headers=pat)
    assert [i["finding"] for i in closed.json()["items"]] == ["justified"]
