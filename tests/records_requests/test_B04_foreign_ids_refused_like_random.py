"""Refusals that involve another organization's objects read exactly like refusals
for random ids (SECURITY-TESTS B04 and O-same404; issue 22 item 5).

A holder answering a records request names a subject and a consent. When both are
another organization's real ones (the consent given for that very subject), the
refusal used to leave out the consent's problem, so a holder could test whether
consent C belongs to subject S elsewhere. Each answer below must have the same
status and the same problem body as the one for random ids, and store nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from service.auth.principals import Role
from tests.records_requests.support import RequestKit, make_request_kit
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body
from tests.support.world import World


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    return await make_request_kit(client, world)


async def foreign_subject_and_consent(kit: RequestKit) -> tuple[str, str]:
    """A subject of an unrelated organization and the consent it recorded for it."""
    headers = kit.staff("unrelated")
    r = await kit.client.post("/v1/subjects", json={"is_minor": False}, headers=headers)
    assert r.status_code == 201, r.text
    subject = str(r.json()["id"])
    body = grant_body(
        kit.world,
        recipients=[str(kit.world.orgs["police"])],
        purposes=["investigation"],
        categories=["identity"],
    )
    r = await kit.client.post(f"/v1/subjects/{subject}/consents", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return subject, str(r.json()["id"])


def comparable(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = response.json()
    body.pop("request_id", None)
    body.pop("instance", None)
    return response.status_code, body


async def answer(kit: RequestKit, request: dict[str, Any], subject: str, consent: str) -> Any:
    envelope = kit.seal(request, subject, {"identity": "x"}, consent_id=consent)
    r = await kit.respond(
        request["id"], {"decision": "release", "consent_id": consent, "envelope": envelope}
    )
    return comparable(r)


async def test_B04_records_answer_with_foreign_subject_and_consent_reads_like_random_ids(
    kit: RequestKit, db: TestDatabase
) -> None:
    request = await kit.made(categories=["identity"])
    foreign_subject, foreign_consent = await foreign_subject_and_consent(kit)
    own_subject = await kit.subject()
    before = db.dump()

    random_both = await answer(kit, request, str(uuid.uuid4()), str(uuid.uuid4()))
    foreign_both = await answer(kit, request, foreign_subject, foreign_consent)
    foreign_subject_random_consent = await answer(kit, request, foreign_subject, str(uuid.uuid4()))
    random_subject_foreign_consent = await answer(kit, request, str(uuid.uuid4()), foreign_consent)
    assert random_both[0] == 422
    assert {e["path"] for e in random_both[1]["errors"]} == {
        "/envelope/header/context/subject_id",
        "/consent_id",
    }
    assert foreign_both == random_both
    assert foreign_subject_random_consent == random_both
    assert random_subject_foreign_consent == random_both

    # The holder's own subject with another organization's consent: as a random consent.
    own_random = await answer(kit, request, own_subject, str(uuid.uuid4()))
    own_foreign = await answer(kit, request, own_subject, foreign_consent)
    assert own_random[0] == 422
    assert own_foreign == own_random
    assert db.dump() == before  # O-unchanged


async def test_B04_refusal_for_foreign_request_reads_like_random_id(
    kit: RequestKit, db: TestDatabase
) -> None:
    """Every records-request endpoint that takes a request id in its path, called by
    an organization that cannot see it: the same 404 as for a random id."""
    request = await kit.made(categories=["identity"])
    outsider = kit.world.headers("unrelated", Role.caseworker, Role.supervisor)
    investigator = kit.world.headers("prosecutor", Role.prosecutor)
    calls = [
        ("GET", "/v1/records-requests/{}", None, outsider),
        ("POST", "/v1/records-requests/{}/respond", {"decision": "refuse", "note": "n"}, outsider),
        ("POST", "/v1/records-requests/{}/deliver", None, investigator),
        (
            "POST",
            "/v1/records-requests/{}/suspension",
            {"until": "2026-12-01T00:00:00Z", "document_sha256": "ab" * 32},
            investigator,
        ),
    ]
    before = db.dump()
    for method, path, body, headers in calls:
        real = await kit.client.request(
            method, path.format(request["id"]), json=body, headers=headers
        )
        random = await kit.client.request(
            method, path.format(uuid.uuid4()), json=body, headers=headers
        )
        assert real.status_code == 404, (path, real.text)
        assert comparable(real) == comparable(random), path
    assert db.dump() == before
