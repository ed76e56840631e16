"""A field named after a category must carry that category (docs/envelope.md
"Labels"; SECURITY-TESTS C01; issue 22 item 6).

Privileged counseling notes labelled `needs` used to be accepted and released,
because the decision reads the label only. Now the whole send is refused with 422
`label_mismatch` and nothing is stored, for a referral and for a records
request's answer, on both engines; and the client library refuses to build such
an envelope unless told, for this test, to skip the check."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.envelope import TAXONOMY_CATEGORIES, PlainField, seal_envelope
from accord_client.envelope_errors import EnvelopeMalformedError

from service.auth.principals import Role
from tests.records_requests.support import RequestKit, make_request_kit
from tests.referrals.support import Kit, make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World

ROOT = Path(__file__).resolve().parents[2]
NOTES = "planted counseling session notes"


def label_codes(response: httpx.Response) -> list[tuple[str, str]]:
    return [
        (e["path"], e["field"])
        for e in response.json().get("errors", [])
        if e.get("code") == "label_mismatch"
    ]


def test_C01_client_refuses_to_seal_a_mislabelled_field() -> None:
    keys = {"sender_signing_key": bytes(range(32)), "recipient_encryption_key": bytes(32)}
    with pytest.raises(EnvelopeMalformedError) as caught:
        seal_envelope(
            [
                PlainField(name="phone", category="contact", value="1"),
                PlainField(name="counseling_notes", category="needs", value=NOTES),
            ],
            sender_org="0b5e1c2a-4d3f-4e6a-9b8c-7d1e2f3a4b5c",
            recipient_org="9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
            recipient_encryption_key=bytes.fromhex(
                "4a84080f8cbd2c831b0ba8c6229def74624ef80b79443e34662e7c7123c75b74"
            ),
            sender_signing_key=keys["sender_signing_key"],
            subject_id="3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a99",
            purpose="services_referral",
            consent_id=None,
        )
    assert [(p.path, p.code) for p in caught.value.problems] == [
        ("envelope.fields[0].category", "label_mismatch")  # fields are sealed in name order
    ]


def test_C01_client_taxonomy_is_the_shipped_one() -> None:
    shipped = tomllib.loads((ROOT / "policies/categories.toml").read_text("utf-8"))
    assert frozenset(shipped["categories"]) == TAXONOMY_CATEGORIES


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> Kit:
    return await make_kit(client, world)


async def test_C01_referral_with_a_mislabelled_field_is_refused_and_stores_nothing(
    kit: Kit, db: TestDatabase
) -> None:
    envelope = seal_envelope(
        [
            PlainField(name="counseling_notes", category="needs", value=NOTES),
            PlainField(name="phone", category="contact", value="+1 555 0100"),
        ],
        sender_org=str(kit.world.orgs["vsp"]),
        sender_signing_key=kit.keys["vsp"].current_signing_key.seed,
        recipient_org=str(kit.world.orgs["shelter"]),
        recipient_encryption_key=kit.keys["shelter"].current_encryption_key.public_key,
        subject_id=kit.subject,
        purpose="services_referral",
        consent_id=str(kit.consent["id"]),
        categories=(),  # the attacker's own client skips the check
    )
    before = db.dump()
    r = await kit.client.post("/v1/referrals", json=kit.body(envelope), headers=kit.staff("vsp"))
    assert r.status_code == 422, r.text
    assert label_codes(r) == [("envelope.fields[0].category", "counseling_notes")]
    assert NOTES not in r.text
    assert db.dump() == before
    # The same field correctly labelled is not a label problem (the policies decide).
    r = await kit.client.post(
        "/v1/referrals", json=kit.body(kit.seal({"needs": "a bed"})), headers=kit.staff("vsp")
    )
    assert r.status_code == 201, r.text


@pytest.fixture
async def request_kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    return await make_request_kit(client, world)


async def test_C01_records_answer_with_a_mislabelled_field_is_refused_and_stores_nothing(
    request_kit: RequestKit, db: TestDatabase
) -> None:
    kit = request_kit
    request: dict[str, Any] = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256="ab" * 32,
        categories=["identity"],
    )
    subject = await kit.subject()
    envelope = seal_envelope(
        [PlainField(name="counseling_notes", category="identity", value=NOTES)],
        sender_org=str(kit.world.orgs["vsp"]),
        sender_signing_key=kit.keys["vsp"].current_signing_key.seed,
        recipient_org=str(kit.world.orgs["police"]),
        recipient_encryption_key=kit.keys["police"].current_encryption_key.public_key,
        subject_id=subject,
        purpose=request["purpose"],
        consent_id=None,
        request_id=request["id"],
        categories=(),
    )
    before = db.dump()
    r = await kit.respond(request["id"], {"decision": "release", "envelope": envelope})
    assert r.status_code == 422, r.text
    assert label_codes(r) == [("envelope.fields[0].category", "counseling_notes")]
    assert db.dump() == before
    got = await kit.client.get(
        f"/v1/records-requests/{request['id']}", headers=kit.staff("police", Role.investigator)
    )
    assert got.json()["status"] == "open"
