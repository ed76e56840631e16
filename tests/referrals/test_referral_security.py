"""Referral attacks on both engines: tampered envelopes (E01, E03), replays,
policy refusals at send (422 listing each field, nothing stored), metadata
isolation (B02, B03), lifecycle conflicts (409) and idempotent creates."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest
from accord_client.envelope_errors import EnvelopeError

from service.auth.principals import Role
from tests.referrals.support import Kit
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent

pytestmark = pytest.mark.security


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _flip_ciphertext(env: dict[str, Any]) -> None:
    env["fields"][0]["ciphertext"] = _flip(env["fields"][0]["ciphertext"])


def _swap_ciphertexts(env: dict[str, Any]) -> None:
    a, b = env["fields"][0], env["fields"][1]
    a["ciphertext"], b["ciphertext"] = b["ciphertext"], a["ciphertext"]


def _relabel(env: dict[str, Any]) -> None:
    env["fields"][0]["category"] = "needs" if env["fields"][0]["category"] != "needs" else "contact"


def _remove_field(env: dict[str, Any]) -> None:
    env["fields"].pop()


def _strip_signature(env: dict[str, Any]) -> None:
    del env["signature"]


def _zero_signature(env: dict[str, Any]) -> None:
    env["signature"] = base64.b64encode(bytes(64)).decode()


def _purpose(env: dict[str, Any]) -> None:
    env["context"]["purpose"] = "case_coordination"


TAMPERING: dict[str, Callable[[dict[str, Any]], None]] = {
    "flipped-ciphertext-bit": _flip_ciphertext,
    "swapped-ciphertexts": _swap_ciphertexts,
    "changed-category": _relabel,
    "removed-field": _remove_field,
    "stripped-signature": _strip_signature,
    "zero-signature": _zero_signature,
    "changed-purpose": _purpose,
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
async def test_E01_tampered_envelope_rejected_and_nothing_stored(
    kit: Kit, db: TestDatabase, how: str
) -> None:
    envelope = copy.deepcopy(kit.seal())
    TAMPERING[how](envelope)
    before = db.dump()
    r = await kit.client.post("/v1/referrals", json=kit.body(envelope), headers=kit.staff("vsp"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert all(
        e["path"].startswith("/envelope") or e["path"].startswith("envelope")
        for e in r.json()["errors"]
    ), r.json()
    assert db.dump() == before


async def test_E01_retargeted_recipient_and_spliced_field_rejected(
    kit: Kit, db: TestDatabase
) -> None:
    await kit.register("police")
    before = db.dump()
    # Sealed to the police but posted as a referral to the shelter.
    to_police = kit.seal(recipient="police")
    r = await kit.client.post("/v1/referrals", json=kit.body(to_police), headers=kit.staff("vsp"))
    assert r.status_code == 422
    assert {e["path"] for e in r.json()["errors"]} >= {"envelope.recipient_org"}
    # A field spliced in from another envelope (same recipient, same subject).
    other = kit.seal({"phone": "+1-555-0100"})
    envelope = copy.deepcopy(kit.seal())
    envelope["fields"] = sorted(
        [f for f in envelope["fields"] if f["name"] != "phone"] + other["fields"],  # type: ignore[operator]
        key=lambda f: f["name"],
    )
    r = await kit.client.post("/v1/referrals", json=kit.body(envelope), headers=kit.staff("vsp"))
    assert r.status_code == 422
    assert db.dump() == before


async def test_E03_sender_impersonation_rejected(kit: Kit, db: TestDatabase) -> None:
    """Org C seals to the shelter and claims to be the VSP, signing with its own key."""
    unrelated = await kit.register("unrelated")
    envelope = kit.seal(sender="unrelated")
    envelope["sender_org"] = str(kit.world.orgs["vsp"])
    before = db.dump()
    r = await kit.client.post("/v1/referrals", json=kit.body(envelope), headers=kit.staff("vsp"))
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert "envelope.signature" in paths or "envelope.sender_key_id" in paths
    # And C posting it under its own token fails on ownership (the subject is the VSP's).
    r = await kit.client.post(
        "/v1/referrals", json=kit.body(envelope), headers=kit.staff("unrelated")
    )
    assert r.status_code == 404
    assert db.dump() == before
    assert unrelated.current_signing_key.key_id != kit.keys["vsp"].current_signing_key.key_id


async def test_replayed_envelope_is_never_accepted_twice(kit: Kit, db: TestDatabase) -> None:
    envelope = kit.seal()
    first = await kit.client.post(
        "/v1/referrals", json=kit.body(envelope), headers=kit.staff("vsp")
    )
    assert first.status_code == 201
    before = db.dump()
    for change in ({}, {"urgency": "routine"}, {"services_requested": ["legal_aid"]}):
        r = await kit.client.post(
            "/v1/referrals", json=kit.body(envelope, **change), headers=kit.staff("vsp")
        )
        assert r.status_code == 422, r.text
        assert r.json()["type"].endswith("envelope-replayed")
    assert db.dump() == before


async def test_client_open_raises_on_a_tampered_delivery(kit: Kit) -> None:
    referral = await kit.send()
    delivery = (await kit.deliver(referral["id"])).json()
    flipped = copy.deepcopy(delivery)
    flipped["released"][0]["ciphertext"] = _flip(flipped["released"][0]["ciphertext"])
    with pytest.raises(EnvelopeError):
        await kit.open(flipped)
    relabelled = copy.deepcopy(delivery)
    relabelled["released"][0]["category"] = "safety_plan"
    with pytest.raises(EnvelopeError):
        await kit.open(relabelled)
    dropped = copy.deepcopy(delivery)
    dropped["released"].pop()
    with pytest.raises(EnvelopeError):
        await kit.open(dropped)
    assert len((await kit.open(delivery)).values) == len(delivery["released"])


async def test_C01_policy_refusal_at_send_lists_every_field_and_stores_nothing(
    kit: Kit, db: TestDatabase
) -> None:
    """The consent covers identity, contact, language and needs; counseling notes and
    the safety plan are not covered (and counseling notes never go to a shelter this way)."""
    values = {"phone": "+1-555-0101", "notes": "x", "plan": "y"}
    categories = {"notes": "counseling_notes", "plan": "safety_plan"}
    before = db.dump()
    r = await kit.client.post(
        "/v1/referrals",
        json=kit.body(kit.seal(values, categories=categories)),
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("policy-refused")
    refused = {e["field"]: e for e in problem["errors"]}
    assert set(refused) == {"notes", "plan"}
    for item in refused.values():
        assert item["policies"]
        assert item["reasons"]
    assert db.dump() == before


async def test_send_validation_names_each_rule_and_stores_nothing(
    kit: Kit, db: TestDatabase
) -> None:
    _, other_consent = await new_consent(kit.client, kit.world, categories=["contact"])
    before = db.dump()
    bad = kit.body(
        kit.seal(),
        purpose="sightseeing",
        consent_id=other_consent["id"],
        recipient_org_id=str(kit.world.orgs["vsp"]),
    )
    r = await kit.client.post("/v1/referrals", json=bad, headers=kit.staff("vsp"))
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert {"/purpose", "/consent_id", "/recipient_org_id"} <= paths
    r = await kit.client.post(
        "/v1/referrals",
        json={**kit.body(kit.seal()), "status": "accepted"},
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 422  # B11: mass assignment refused
    assert db.dump() == before


@pytest.mark.parametrize("role", [Role.caseworker, Role.supervisor, Role.auditor, Role.org_admin])
async def test_B02_unrelated_organization_gets_404_on_every_referral_path(
    kit: Kit, db: TestDatabase, role: Role
) -> None:
    referral = await kit.send()
    rid = referral["id"]
    headers = kit.world.headers("unrelated", role)
    before = db.dump()
    bodies: dict[str, Any] = {"decline": {"reason": "no_capacity"}, "close": {"outcome": "done"}}
    r = await kit.client.get(f"/v1/referrals/{rid}", headers=headers)
    assert r.status_code == 404
    missing = await kit.client.get(
        "/v1/referrals/00000000-0000-4000-8000-000000000000", headers=headers
    )
    assert missing.status_code == 404
    # O-same404: the same problem as for an id that does not exist.
    assert {k: v for k, v in r.json().items() if k != "instance"} == {
        k: v for k, v in missing.json().items() if k != "instance"
    }
    for action in ("deliver", "accept", "decline", "close", "withdraw"):
        r = await kit.client.post(
            f"/v1/referrals/{rid}/{action}", json=bodies.get(action), headers=headers
        )
        assert r.status_code == 404, (action, r.text)
    for box in ("sent", "received"):
        r = await kit.client.get(f"/v1/referrals?box={box}", headers=headers)
        assert r.status_code == 200
        assert r.json()["items"] == []  # B03
    assert db.dump() == before


async def test_referral_metadata_visible_to_both_parties_and_oversight_auditors(kit: Kit) -> None:
    referral = await kit.send()
    for org, role in (
        ("vsp", Role.caseworker),
        ("vsp", Role.auditor),
        ("shelter", Role.supervisor),
        ("oversight", Role.auditor),
    ):
        r = await kit.client.get(
            f"/v1/referrals/{referral['id']}", headers=kit.world.headers(org, role)
        )
        assert r.status_code == 200, (org, role)
        assert "ciphertext" not in r.text
        assert "sealed_key" not in r.text
    r = await kit.client.get(
        f"/v1/referrals/{referral['id']}", headers=kit.world.headers("police", Role.investigator)
    )
    assert r.status_code == 404


async def test_lifecycle_invalid_transitions_are_409_and_change_nothing(
    kit: Kit, db: TestDatabase
) -> None:
    referral = await kit.send()
    rid = referral["id"]
    shelter = kit.staff("shelter")

    async def post(action: str, headers: dict[str, str], body: Any = None) -> int:
        r = await kit.client.post(f"/v1/referrals/{rid}/{action}", json=body, headers=headers)
        return r.status_code

    before = db.dump()
    assert await post("accept", shelter) == 409  # not delivered yet
    assert await post("close", shelter, {"outcome": "done"}) == 409
    assert await post("withdraw", shelter) == 403  # only the sender withdraws
    assert await post("deliver", kit.staff("vsp")) == 403  # only the recipient delivers
    assert await post("decline", shelter, {"reason": "because"}) == 422
    assert db.dump() == before
    assert (await kit.deliver(rid)).status_code == 200
    assert await post("withdraw", kit.staff("vsp")) == 409  # delivered: too late
    assert await post("decline", shelter, {"reason": "no_capacity"}) == 200
    before = db.dump()
    assert await post("accept", shelter) == 409
    assert (await kit.deliver(rid)).status_code == 409
    assert db.dump() == before
    state = (await kit.client.get(f"/v1/referrals/{rid}", headers=kit.staff("vsp"))).json()
    assert state["status"] == "declined"
    assert state["decline_reason"] == "no_capacity"
    assert state["shredded_at"] is not None


async def test_withdraw_before_delivery_destroys_the_sealed_keys(
    kit: Kit, db: TestDatabase
) -> None:
    referral = await kit.send()
    r = await kit.client.post(f"/v1/referrals/{referral['id']}/withdraw", headers=kit.staff("vsp"))
    assert r.status_code == 200
    assert r.json()["status"] == "withdrawn"
    assert r.json()["shredded_at"] is not None
    assert (await kit.deliver(referral["id"])).status_code == 409
    dump = db.dump()
    assert referral["envelope_id"] in dump  # metadata stays


async def test_idempotent_create_returns_the_first_referral(kit: Kit, db: TestDatabase) -> None:
    body = kit.body(kit.seal())
    headers = {**kit.staff("vsp"), "Idempotency-Key": "retry-7f3c"}
    first = await kit.client.post("/v1/referrals", json=body, headers=headers)
    assert first.status_code == 201
    before = db.dump()
    again = await kit.client.post("/v1/referrals", json=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await kit.client.post(
        "/v1/referrals", json={**body, "urgency": "routine"}, headers=headers
    )
    assert other.status_code == 422
    assert db.dump() == before


async def test_list_is_paginated_and_filtered_by_status(kit: Kit) -> None:
    ids = [(await kit.send({"phone": f"+1-555-01{i:02d}"}))["id"] for i in range(3)]
    seen: list[str] = []
    url = "/v1/referrals?box=sent&limit=2"
    while url:
        r = await kit.client.get(url, headers=kit.staff("vsp"))
        assert r.status_code == 200
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        url = (
            f"/v1/referrals?box=sent&limit=2&cursor={page['next_cursor']}"
            if page["next_cursor"]
            else ""
        )
    assert sorted(seen) == sorted(ids)
    r = await kit.client.get("/v1/referrals?box=sent&status=delivered", headers=kit.staff("vsp"))
    assert r.json()["items"] == []


async def test_B09_parties_without_case_roles_get_403(kit: Kit, db: TestDatabase) -> None:
    envelope = kit.seal()
    before = db.dump()
    for role in (Role.auditor, Role.org_admin):
        r = await kit.client.post(
            "/v1/referrals", json=kit.body(envelope), headers=kit.world.headers("vsp", role)
        )
        assert r.status_code == 403
    assert db.dump() == before
    referral = await kit.send()
    before = db.dump()
    for org, action in (("shelter", "deliver"), ("shelter", "accept"), ("vsp", "withdraw")):
        for role in (Role.auditor, Role.org_admin):
            r = await kit.client.post(
                f"/v1/referrals/{referral['id']}/{action}", headers=kit.world.headers(org, role)
            )
            assert r.status_code == 403, (org, action, role)
    assert db.dump() == before


async def test_E05_rotated_keys(kit: Kit, db: TestDatabase) -> None:
    """An envelope sent before both sides rotate still verifies against the historical
    key id; a new one signed with the retired key, or sealed to the recipient's
    retired key, is refused."""
    from accord_client.keys import rotate

    before_rotation = await kit.send()
    old = dict(kit.keys)
    new = {org: rotate(keys) for org, keys in old.items()}
    for org in ("vsp", "shelter"):
        r = await kit.client.put(
            f"/v1/organizations/{kit.world.orgs[org]}/keys",
            json=new[org].public_registration(),
            headers=kit.world.headers(org, Role.org_admin),
        )
        assert r.status_code == 200, r.text
    kit.keys = new  # the shelter opens with its key file, which keeps the retired key
    delivery = (await kit.deliver(before_rotation["id"])).json()
    assert delivery["sender_key_id"] == old["vsp"].current_signing_key.key_id
    assert len((await kit.open(delivery)).values) == len(delivery["released"])

    state = db.dump()
    kit.keys = {"vsp": old["vsp"], "shelter": new["shelter"]}  # signed with the retired key
    r = await kit.client.post("/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp"))
    assert r.status_code == 422
    assert "envelope.sender_key_id" in {e["path"] for e in r.json()["errors"]}
    kit.keys = {"vsp": new["vsp"], "shelter": old["shelter"]}  # sealed to the retired key
    r = await kit.client.post("/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp"))
    assert r.status_code == 422
    assert "envelope.recipient_key_id" in {e["path"] for e in r.json()["errors"]}
    assert db.dump() == state
