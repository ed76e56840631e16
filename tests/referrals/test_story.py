"""The referral loop end to end with the client library, on both engines: a VSP
records consent, seals a referral to a shelter; the shelter delivers and opens it,
accepts and closes it; values round-trip exactly (non-ASCII included), the sender
sees every state (closed loop), and the raw database and key directory contain no
planted value in any encoding (DESIGN.md guarantee 1)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from service.auth.principals import Role
from service.disclosures.schemas import DeliveryRead
from tests.referrals.support import PLANTED, Kit
from tests.support.databases import TestDatabase


def _directory_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def encodings(value: str) -> dict[str, bytes]:
    raw = value.encode()
    return {
        "utf-8": raw,
        "utf-16-le": value.encode("utf-16-le"),
        "utf-16-be": value.encode("utf-16-be"),
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "json-escaped": json.dumps(value).encode(),
        "hex": raw.hex().encode(),
    }


async def test_full_story_values_round_trip_and_the_sender_sees_every_state(kit: Kit) -> None:
    client, world = kit.client, kit.world
    referral = await kit.send()
    assert referral["status"] == "sent"
    assert {f["name"] for f in referral["fields"]} == set(PLANTED)
    assert "ciphertext" not in json.dumps(referral)

    received = await client.get("/v1/referrals?box=received", headers=kit.staff("shelter"))
    assert [r["id"] for r in received.json()["items"]] == [referral["id"]]

    r = await kit.deliver(referral["id"])
    assert r.status_code == 200, r.text
    delivery = r.json()
    assert delivery["withheld"] == []
    opened = await kit.open(delivery)
    assert dict(opened.values) == PLANTED

    for action, body in (("accept", None), ("close", {"outcome": "services_provided"})):
        r = await client.post(
            f"/v1/referrals/{referral['id']}/{action}", json=body, headers=kit.staff("shelter")
        )
        assert r.status_code == 200, r.text

    seen = await client.get(f"/v1/referrals/{referral['id']}", headers=kit.staff("vsp"))
    assert seen.status_code == 200
    state = seen.json()
    assert state["status"] == "closed"
    assert state["outcome"] == "services_provided"
    # The state changes; the shelter's directory entry (not accepting, business hours)
    # adds its warnings after `sent` (docs/referrals.md, P03).
    assert state["recipient_warnings"] == ["recipient_not_accepting", "recipient_limited_hours"]
    changes = [e for e in state["timeline"] if e["event"] not in state["recipient_warnings"]]
    assert [e["event"] for e in changes] == ["sent", "delivered", "accepted", "closed"]
    assert all(e["audit_seq"] is not None for e in state["timeline"])
    assert delivery["disclosure_seq"] == changes[1]["audit_seq"]

    accounting = await client.get(
        f"/v1/subjects/{kit.subject}/disclosures", headers=kit.staff("vsp")
    )
    items = accounting.json()["items"]
    assert [i["recipient_org_id"] for i in items] == [str(world.orgs["shelter"])]
    assert items[0]["categories"] == sorted({"identity", "contact", "language", "needs"})
    assert items[0]["legal_basis"] == "consent"


async def test_zero_knowledge_no_planted_value_in_the_database_or_key_directory(
    kit: Kit, db: TestDatabase, app_settings: object
) -> None:
    referral = await kit.send()
    delivery = (await kit.deliver(referral["id"])).json()
    assert dict((await kit.open(delivery)).values) == PLANTED
    await kit.client.post(
        f"/v1/referrals/{referral['id']}/accept", headers=kit.staff("shelter", Role.supervisor)
    )
    haystacks = {"database": db.raw_bytes()}
    haystacks["key directory"] = _directory_bytes(Path(app_settings.key_dir))  # type: ignore[attr-defined]
    for where, haystack in haystacks.items():
        assert len(haystack) > 100, where
        for name, value in PLANTED.items():
            for encoding, needle in encodings(value).items():
                assert needle not in haystack, f"{name} as {encoding} found in the {where}"
    # The test can fail: the same search finds a value that is in the database.
    assert str(kit.world.orgs["shelter"]).encode() in haystacks["database"]


async def test_delivery_bodies_have_exactly_the_documented_shape(kit: Kit) -> None:
    """The deliver endpoint serializes its body directly (no response-model pass),
    so this checks both shapes, released and withheld, against DeliveryRead: every
    documented property present, nothing else (SECURITY-TESTS B12)."""
    referral = await kit.send()
    released = (await kit.deliver(referral["id"])).json()
    r = await kit.client.post(
        f"/v1/consents/{kit.consent['id']}/revoke",
        json={"reason": "withdrawn"},
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 200, r.text
    withheld = (await kit.deliver(referral["id"])).json()
    assert released["released"]
    assert not released["withheld"]
    assert withheld["withheld"]
    assert not withheld["released"]
    for body in (released, withheld):
        assert DeliveryRead.model_validate(body).model_dump(mode="json") == body
    schema = (await kit.client.get("/openapi.json")).json()
    deliver = schema["paths"]["/v1/referrals/{referral_id}/deliver"]["post"]
    ok = deliver["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/DeliveryRead")
