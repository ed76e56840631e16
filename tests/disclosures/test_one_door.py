"""The one door (DESIGN.md section 2, guarantees 2 and 3), for both kinds of delivery.

A referral delivered to its recipient (POST /v1/referrals/{id}/deliver) and a records
request's answer delivered to the requesting agency (POST
/v1/records-requests/{id}/deliver) are one rule: every field is decided again at
the moment of delivery, and nothing leaves without its audit entry. So each test
below has one body, run for each kind (a small adapter, `Door`, hides how the kind
is prepared and delivered) on each engine (the root conftest's `db`).

Everything goes through HTTP and the existing test support; a fault is put in the
test's own database from outside the service (a trigger that refuses the audit
entry's INSERT), never by replacing a piece of the code under test. Field values
are generated test fixtures.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from accord_client.envelope import PlainField, seal_envelope
from sqlalchemy.engine import make_url

from service.auth.principals import Role
from service.clock import FrozenClock
from tests.records_requests.support import make_request_kit
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World

# name -> (category, value). Both kinds may release identity and contact under the
# consents their kits record (the VSP's grant to the shelter for services_referral;
# a grant to the police for investigation), and the shared agreement permits both.
FIELDS: dict[str, tuple[str, str]] = {
    "full_name": ("identity", "Door Planted-Name Ñandú"),
    "alias": ("identity", "door-planted alias ትግርኛ"),
    "phone": ("contact", "+1-555-0177-door-planted"),
}
CATEGORIES = sorted({category for category, _ in FIELDS.values()})

# The holder's own stricter rule (DESIGN.md section 5: an organization can only
# tighten): the VSP, which holds the data in both kinds, stops releasing contact
# details. Added after the envelope was accepted, so the delivery must withhold it.
FORBID_CONTACT = """@id("door-no-contact")
@reason("We no longer release contact details.")
forbid (principal, action == Action::"release", resource)
when { resource.name == "contact" };
"""


@dataclass
class Prepared:
    """A releasable delivery: the sealed envelope as the holder sent it, the consent
    it rests on, and the call that delivers it to its recipient."""

    envelope: dict[str, Any]
    consent_id: str
    deliver: Callable[[], Awaitable[httpx.Response]]

    def ciphertexts(self) -> dict[str, str]:
        """Each field's ciphertext, base64, as the sender's client sealed it."""
        return {str(f["name"]): str(f["ciphertext"]) for f in self.envelope["fields"]}


@dataclass(frozen=True)
class Door:
    """One kind of delivery through the one door."""

    name: str
    prepare: Callable[[httpx.AsyncClient, World], Awaitable[Prepared]]

    def __repr__(self) -> str:
        return self.name


async def _prepare_referral(client: httpx.AsyncClient, world: World) -> Prepared:
    """The VSP refers a subject to the shelter under a live consent (tests/referrals)."""
    kit = await make_kit(client, world)
    envelope = kit.seal(
        {name: value for name, (_, value) in FIELDS.items()},
        categories={name: category for name, (category, _) in FIELDS.items()},
    )
    r = await client.post("/v1/referrals", json=kit.body(envelope), headers=kit.staff("vsp"))
    assert r.status_code == 201, r.text
    referral_id = r.json()["id"]
    return Prepared(envelope, str(kit.consent["id"]), lambda: kit.deliver(referral_id))


async def _prepare_records_request(client: httpx.AsyncClient, world: World) -> Prepared:
    """The police ask the VSP for records on the consent basis (so the consent is
    what decides), and the VSP answers under the survivor's grant to the police
    (tests/records_requests)."""
    kit = await make_request_kit(client, world)
    made = await kit.made(legal_basis="consent", purpose="investigation", categories=CATEGORIES)
    subject = await kit.subject()
    consent = await kit.consent(subject, CATEGORIES)
    envelope = seal_envelope(
        [PlainField(name=n, category=c, value=v) for n, (c, v) in FIELDS.items()],
        sender_org=str(world.orgs["vsp"]),
        sender_signing_key=kit.keys["vsp"].current_signing_key.seed,
        recipient_org=str(world.orgs["police"]),
        recipient_encryption_key=kit.keys["police"].current_encryption_key.public_key,
        subject_id=subject,
        purpose=made["purpose"],
        consent_id=consent,
        request_id=made["id"],
    )
    r = await kit.respond(
        made["id"], {"decision": "release", "consent_id": consent, "envelope": envelope}
    )
    assert r.status_code == 200, r.text
    return Prepared(envelope, consent, lambda: kit.deliver(made["id"]))


# The engine first in every test id ([sqlite-referral]), as the root conftest reads
# ids to count the tests that passed per engine: `db` leads the fixture closure.
pytestmark = pytest.mark.usefixtures("db")

DOORS = [
    Door("referral", _prepare_referral),
    Door("records_request", _prepare_records_request),
]


@pytest.fixture(params=DOORS, ids=[d.name for d in DOORS])
def door(request: pytest.FixtureRequest) -> Door:
    kind: Door = request.param
    return kind


async def _entry(client: httpx.AsyncClient, world: World, seq: int) -> dict[str, Any]:
    """The audit entry numbered `seq`, as the oversight body's auditor reads it."""
    r = await client.get(
        "/v1/audit/entries",
        params={"after_seq": seq - 1, "limit": 1},
        headers=world.headers("oversight", Role.auditor),
    )
    assert r.status_code == 200, r.text
    [entry] = r.json()["items"]
    assert entry["seq"] == seq
    return dict(entry)


def _keys(value: object) -> set[str]:
    """Every key of every JSON object in `value`, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _assert_no_ciphertext(response: httpx.Response, prepared: Prepared) -> None:
    for name, ciphertext in prepared.ciphertexts().items():
        assert ciphertext not in response.text, name
    assert "ciphertext" not in _keys(response.json())


async def _revoke(client: httpx.AsyncClient, world: World, consent_id: str) -> datetime:
    """Revoke through the API, as the owning organization's caseworker; when it took effect."""
    r = await client.post(
        f"/v1/consents/{consent_id}/revoke",
        json={"reason": "the survivor withdrew"},
        headers=world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 200, r.text
    assert r.json()["live"] is False
    return datetime.fromisoformat(r.json()["revoked_at"])


async def _forbid_contact(client: httpx.AsyncClient, world: World) -> None:
    r = await client.put(
        f"/v1/organizations/{world.orgs['vsp']}/policy",
        json={"cedar": FORBID_CONTACT},
        headers=world.headers("vsp", Role.org_admin),
    )
    assert r.status_code == 200, r.text


# The fault: the database cannot write the audit entry. A trigger on audit_entries
# reaches the entry however it is written: at once (SQLite, under BEGIN IMMEDIATE),
# or inside COMMIT by the deferred trigger on audit_pending (PostgreSQL, migration
# 0110), which inserts into audit_entries too. Each engine fails the INSERT
# with the error class its disk-full fault has: PostgreSQL's disk_full SQLSTATE;
# on SQLite an OperationalError (SQLITE_FULL's class; RAISE() in a trigger can only
# fail a statement as a broken constraint), here "no such table" from the trigger.
_REFUSE = {
    "postgresql": (
        "CREATE FUNCTION door_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'injected fault' USING ERRCODE = 'disk_full'; END $$",
        "CREATE TRIGGER door_refuse_audit BEFORE INSERT ON audit_entries "
        "FOR EACH ROW EXECUTE FUNCTION door_refuse_audit()",
    ),
    "sqlite": (
        "CREATE TRIGGER door_refuse_audit BEFORE INSERT ON audit_entries "
        "BEGIN INSERT INTO door_no_such_table VALUES (1); END",
    ),
}
_ALLOW = {
    "postgresql": ("DROP TRIGGER door_refuse_audit ON audit_entries",),
    "sqlite": ("DROP TRIGGER door_refuse_audit",),
}


async def _on_database(db: TestDatabase, statements: dict[str, tuple[str, ...]]) -> None:
    """DDL on the test's own database, from outside the service (an operator's fault)."""
    if db.engine == "sqlite":
        assert db.path is not None
        connection = sqlite3.connect(db.path)
        try:
            for statement in statements["sqlite"]:
                connection.execute(statement)
            connection.commit()
        finally:
            connection.close()
        return
    url = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    pg_connection = await asyncpg.connect(url)
    try:
        for statement in statements["postgresql"]:
            await pg_connection.execute(statement)
    finally:
        await pg_connection.close()


async def test_revocation_one_instant_before_delivery_withholds(
    door: Door, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    """Guarantee 2: the consent is read at release time. Revoked one instant (the
    test clock's smallest step, a microsecond) before a delivery, it allows nothing
    in that delivery."""
    prepared = await door.prepare(client, world)
    live = await prepared.deliver()
    assert live.status_code == 200, live.text
    assert {f["name"] for f in live.json()["released"]} == set(FIELDS)  # the consent is live
    revoked_at = await _revoke(client, world, prepared.consent_id)
    clock.advance(timedelta(microseconds=1).total_seconds())
    r = await prepared.deliver()
    assert r.status_code == 200, r.text
    delivery = r.json()
    assert delivery["released"] == []
    assert {w["name"] for w in delivery["withheld"]} == set(FIELDS)
    _assert_no_ciphertext(r, prepared)
    # The decision withheld them (not merely lost bytes) and names why.
    assert all(w["policies"] for w in delivery["withheld"])
    assert "crypto-shredded" not in {p for w in delivery["withheld"] for p in w["policies"]}
    entry = await _entry(client, world, delivery["disclosure_seq"])
    assert entry["action"] == "withheld"
    assert entry["details"]["released"] == []
    assert {w["name"] for w in entry["details"]["withheld"]} == set(FIELDS)
    decided_at = datetime.fromisoformat(entry["details"]["decided_at"])
    assert decided_at - revoked_at == timedelta(microseconds=1)


async def test_failed_audit_append_releases_nothing(
    db: TestDatabase, door: Door, client: httpx.AsyncClient, world: World
) -> None:
    """Guarantee 3: the release and its audit entry are one transaction. The database
    cannot write the entry: a 503 problem with Retry-After (API.md: "audit write
    impossible") without any ciphertext, and the database unchanged; once the fault
    is gone, the same delivery releases (so it was the append that failed, not the
    delivery)."""
    prepared = await door.prepare(client, world)
    await _on_database(db, _REFUSE)
    before = db.dump()
    r = await prepared.deliver()
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["status"] == 503
    _assert_no_ciphertext(r, prepared)
    assert "ciphertext" not in r.text
    assert "released" not in r.text
    assert db.dump() == before
    await _on_database(db, _ALLOW)
    again = await prepared.deliver()
    assert again.status_code == 200, again.text
    assert {f["name"] for f in again.json()["released"]} == set(FIELDS)
    entry = await _entry(client, world, again.json()["disclosure_seq"])
    assert entry["action"] == "disclosure"


async def test_audit_entry_and_body_agree_on_released_fields(
    door: Door, client: httpx.AsyncClient, world: World
) -> None:
    """Guarantee 3 (SECURITY-TESTS F10): the entry records exactly what the body
    released (names, categories, the SHA-256 of each ciphertext) and what it
    withheld. The holder's own rule, added after the answer was accepted, withholds
    the contact fields; the identity fields are released."""
    prepared = await door.prepare(client, world)
    await _forbid_contact(client, world)
    r = await prepared.deliver()
    assert r.status_code == 200, r.text
    delivery = r.json()
    released = {(f["name"], f["category"]) for f in delivery["released"]}
    withheld = {w["name"]: (w["category"], w["policies"]) for w in delivery["withheld"]}
    assert released == {(n, c) for n, (c, _) in FIELDS.items() if c != "contact"}
    rule = f"org/{world.orgs['vsp']}/door-no-contact"
    assert withheld == {n: ("contact", [rule]) for n, (c, _) in FIELDS.items() if c == "contact"}
    entry = await _entry(client, world, delivery["disclosure_seq"])
    assert entry["action"] == "disclosure"
    details = entry["details"]
    assert {(e["name"], e["category"]) for e in details["released"]} == released
    assert {e["name"]: e["ciphertext_sha256"] for e in details["released"]} == {
        f["name"]: hashlib.sha256(base64.b64decode(f["ciphertext"])).hexdigest()
        for f in delivery["released"]
    }
    assert {e["name"]: (e["category"], e["policies"]) for e in details["withheld"]} == withheld
    # What the body released is what the sender sealed, byte for byte.
    assert {f["name"]: f["ciphertext"] for f in delivery["released"]} == {
        n: c for n, c in prepared.ciphertexts().items() if n not in withheld
    }
