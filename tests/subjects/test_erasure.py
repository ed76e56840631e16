"""Erasure of a subject (issue 23, docs/erasure.md), on both engines.

Planted: a referral delivered (fields released), a referral never delivered, and a
records-request answer delivered, all about one subject. After the erasure none of
their ciphertext or sealed-key bytes is stored: the columns are NULL at once, and
after the sweep's maintenance step the raw storage holds none of the bytes (the
SQLite file and WAL; PostgreSQL's relation files, read from disk with the helper of
tests/referrals/test_sweep_raw_storage.py)."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.records_requests.models import RecordsRequestField
from service.referrals.models import ReferralField
from service.retention import run_sweep
from tests.records_requests.support import VALUES, RequestKit, make_request_kit
from tests.referrals.support import CATEGORIES, Kit
from tests.referrals.test_sweep_raw_storage import raw_storage
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_consent
from tests.support.world import World


@pytest.fixture
async def kits(client: httpx.AsyncClient, world: World) -> tuple[Kit, RequestKit]:
    requests = await make_request_kit(client, world)
    referrals = Kit(client=client, world=world, keys=requests.keys)
    await referrals.register("shelter")
    referrals.subject, referrals.consent = await new_consent(client, world, categories=CATEGORIES)
    return referrals, requests


def erase_url(subject: str) -> str:
    return f"/v1/subjects/{subject}/erase"


async def erase(kit: Kit, subject: str | None = None, org: str = "vsp") -> httpx.Response:
    return await kit.client.post(
        erase_url(subject or kit.subject),
        json={"reason": "survivor_request"},
        headers=kit.staff(org, Role.supervisor),
    )


async def stored_secrets(app: Any) -> list[bytes]:
    """Every ciphertext and sealed key still stored, of every kind."""
    async with app.state.sessionmaker() as session:
        found: list[bytes] = []
        for model in (ReferralField, RecordsRequestField):
            for ciphertext, sealed_key in (
                await session.execute(select(model.ciphertext, model.sealed_key))
            ).all():
                found += [b for b in (ciphertext, sealed_key) if b]
    return found


async def answered_request(requests: RequestKit, subject: str) -> str:
    made = await requests.made()
    consent = await requests.consent(subject, ["identity", "contact"])
    answer = {"identity": VALUES["identity"], "contact": VALUES["contact"]}
    envelope = requests.seal(made, subject, answer, consent_id=consent)
    r = await requests.respond(
        made["id"], {"decision": "release", "consent_id": consent, "envelope": envelope}
    )
    assert r.status_code == 200, r.text
    assert (await requests.deliver(made["id"])).status_code == 200
    return str(made["id"])


async def erased_audit_entries(app: Any) -> int:
    async with app.state.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "subject.erased")
            )
            or 0
        )


async def events(kit: Kit, org: str, kind: str) -> list[dict[str, Any]]:
    r = await kit.client.get("/v1/events?limit=200", headers=kit.staff(org))
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["type"] == kind]


async def test_erasure_destroys_every_secret_and_keeps_the_record(
    kits: tuple[Kit, RequestKit], app: Any, db: TestDatabase
) -> None:
    kit, requests = kits
    delivered = await kit.send()
    assert (await kit.deliver(delivered["id"])).status_code == 200
    undelivered = await kit.send()
    request_id = await answered_request(requests, kit.subject)
    link = await kit.client.post(
        f"/v1/subjects/{kit.subject}/access-links", headers=kit.staff("vsp")
    )
    assert link.status_code == 201, link.text
    planted = await stored_secrets(app)
    assert len(planted) >= 2 * (2 * len(CATEGORIES) + 2)
    held = await raw_storage(app, db)
    assert all(b in held for b in planted)  # the search sees them while they are held
    accounting = f"/v1/subjects/{kit.subject}/disclosures"
    before = (await kit.client.get(accounting, headers=kit.staff("vsp"))).json()["items"]
    assert len(before) == 2

    r = await erase(kit)
    assert r.status_code == 200, r.text
    assert r.json()["reason"] == "survivor_request"
    assert await stored_secrets(app) == []
    # The sweep's maintenance step (SQLite: WAL checkpoint; PostgreSQL: VACUUM FULL
    # of the ciphertext tables) bounds how long dead copies last, as for every
    # shredding; then the raw storage (the SQLite file and WAL, PostgreSQL's relation
    # files) holds none of the bytes.
    await run_sweep(app.state.sessionmaker, retention=timedelta(days=3650), clock=kit.world.clock)
    raw = await raw_storage(app, db)
    assert [b for b in planted if b in raw] == []
    # Metadata and the accounting stay: every earlier disclosure is still listed.
    after = (await kit.client.get(accounting, headers=kit.staff("vsp"))).json()["items"]
    assert after == before
    state = await kit.client.get(f"/v1/referrals/{undelivered['id']}", headers=kit.staff("vsp"))
    assert state.json()["shredded_at"] is not None
    # Its consents are revoked, as a withdrawal would (its events go out too).
    consents = await kit.client.get(
        f"/v1/subjects/{kit.subject}/consents", headers=kit.staff("vsp")
    )
    assert consents.status_code == 200
    assert consents.json()["items"]
    assert all(c["revoked_at"] for c in consents.json()["items"]), consents.json()
    assert await events(kit, "shelter", "consent.withdrawn")
    # Its access link has ended.
    token = {"Authorization": f"Bearer {link.json()['token']}"}
    assert (await kit.client.get(accounting, headers=token)).status_code == 401
    # Every earlier recipient is told to destroy its copies, identifiers only.
    (shelter,) = await events(kit, "shelter", "subject.erased")
    assert shelter["data"]["referral_ids"] == [delivered["id"]]
    assert shelter["data"]["action"] == "destroy_copies"
    (police,) = await events(kit, "police", "subject.erased")
    assert police["data"]["request_ids"] == [request_id]
    assert await erased_audit_entries(app) == 1
    # Idempotent: the same answer, nothing changed, nothing audited.
    dump = db.dump()
    again = await erase(kit)
    assert again.status_code == 200
    assert again.json() == r.json()
    assert db.dump() == dump
    assert await erased_audit_entries(app) == 1
    assert len(await events(kit, "shelter", "subject.erased")) == 1


async def test_nothing_new_for_an_erased_subject(
    kits: tuple[Kit, RequestKit], db: TestDatabase
) -> None:
    kit, requests = kits
    made = await requests.made()
    police_consent = await requests.consent(kit.subject, ["identity"])
    assert (await erase(kit)).status_code == 200
    dump = db.dump()
    refused = [
        await kit.client.post(
            f"/v1/subjects/{kit.subject}/consents",
            json=grant_body(kit.world, categories=CATEGORIES),
            headers=kit.staff("vsp"),
        ),
        await kit.client.post("/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp")),
        await kit.client.post(f"/v1/subjects/{kit.subject}/access-links", headers=kit.staff("vsp")),
        await requests.respond(
            made["id"],
            {
                "decision": "release",
                "consent_id": police_consent,
                "envelope": requests.seal(
                    made, kit.subject, {"identity": VALUES["identity"]}, consent_id=police_consent
                ),
            },
        ),
    ]
    assert [r.status_code for r in refused] == [409, 409, 409, 409], [r.text for r in refused]
    assert all("erased" in r.json()["detail"] for r in refused)
    assert db.dump() == dump


async def test_B01_erase_supervisor_of_owner_only(
    kits: tuple[Kit, RequestKit], app: Any, db: TestDatabase
) -> None:
    """Another organization's subject reads exactly as a random id (404, same body);
    a caseworker of the owner is refused by role. Nothing changes."""
    kit, _ = kits
    await kit.send()
    dump = db.dump()
    foreign = await erase(kit, org="unrelated")
    random = await erase(kit, subject=str(uuid.uuid4()), org="unrelated")
    assert foreign.status_code == random.status_code == 404
    assert foreign.json() == random.json()
    assert foreign.headers.get("content-length") == random.headers.get("content-length")
    caseworker = await kit.client.post(
        erase_url(kit.subject), json={"reason": "case_closed"}, headers=kit.staff("vsp")
    )
    assert caseworker.status_code == 403
    bad = await kit.client.post(
        erase_url(kit.subject),
        json={"reason": "because"},
        headers=kit.staff("vsp", Role.supervisor),
    )
    assert bad.status_code == 422
    assert db.dump() == dump
    assert await erased_audit_entries(app) == 0


@pytest.mark.race
async def test_a_delivery_racing_the_erasure_never_releases_a_missing_key(
    kits: tuple[Kit, RequestKit],
) -> None:
    """Either the delivery is decided first and releases whole fields, or it follows
    the erasure and withholds everything: never a 200 with a missing key."""
    kit, _ = kits
    for _ in range(3):
        referral = await kit.send()
        delivery, erasure = await asyncio.gather(kit.deliver(referral["id"]), erase(kit))
        assert erasure.status_code == 200, erasure.text
        assert delivery.status_code == 200, delivery.text
        body = delivery.json()
        for released in body["released"]:
            assert base64.b64decode(released["ciphertext"])
            assert base64.b64decode(released["sealed_key"])
        assert body["released"] == [] or {w["name"] for w in body["withheld"]} == set()
        later = (await kit.deliver(referral["id"])).json()
        assert later["released"] == []
        # A fresh subject for the next round (this one is erased).
        kit.subject, kit.consent = await new_consent(kit.client, kit.world, categories=CATEGORIES)


@pytest.mark.race
async def test_a_consent_created_during_an_erasure_waits_and_is_refused(
    kits: tuple[Kit, RequestKit], app: Any, db: TestDatabase
) -> None:
    """An erasure holds the subject's row from its first statement to its commit
    (service/audit/ordering.py, lock 0). A consent, access link or referral created
    for the subject meanwhile (with an Idempotency-Key or without) waits for it and
    then finds the mark (409), rather than reading the row as it was and recording a
    live grant for an erased subject or sending a referral about it."""
    if db.engine != "postgresql":
        pytest.skip("two concurrent write transactions need PostgreSQL (SQLite has one writer)")
    from service.subjects.models import Subject

    kit, _ = kits
    for create in (
        lambda: kit.client.post(
            f"/v1/subjects/{kit.subject}/consents",
            json=grant_body(kit.world, categories=CATEGORIES),
            headers=kit.staff("vsp"),
        ),
        lambda: kit.client.post(
            f"/v1/subjects/{kit.subject}/access-links", headers=kit.staff("vsp")
        ),
        lambda: kit.client.post(
            f"/v1/subjects/{kit.subject}/consents",
            json=grant_body(kit.world, categories=CATEGORIES),
            headers={**kit.staff("vsp"), "Idempotency-Key": f"during-erasure-{kit.subject}"},
        ),
        lambda: kit.client.post(
            "/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp")
        ),
        lambda: kit.client.post(
            "/v1/referrals",
            json=kit.body(kit.seal()),
            headers={**kit.staff("vsp"), "Idempotency-Key": f"during-erasure-{kit.subject}"},
        ),
    ):
        async with app.state.sessionmaker() as erasing:
            # What an erasure does first: lock the subject's row, then mark it.
            subject = (
                await erasing.scalars(
                    select(Subject).where(Subject.id == uuid.UUID(kit.subject)).with_for_update()
                )
            ).one()
            subject.erased_at = kit.world.clock.now()
            subject.erased_by = "test-eraser"
            await erasing.flush()
            pending = asyncio.ensure_future(create())
            await asyncio.sleep(0.5)
            assert not pending.done(), (await pending).text  # it waits for the erasure
            await erasing.commit()
        refused = await pending
        assert refused.status_code == 409, refused.text
        assert "erased" in refused.json()["detail"]
        # A fresh subject for the next creation (this one is erased).
        kit.subject, kit.consent = await new_consent(kit.client, kit.world, categories=CATEGORIES)


@pytest.mark.race
async def test_erasures_and_creations_side_by_side_never_deadlock(
    kits: tuple[Kit, RequestKit], db: TestDatabase
) -> None:
    """Real erasures beside consent creations, sends and deliveries: every answer is a 2xx or
    the erased subject's 409, never a 5xx (a cycle of waits would be a 503), and no
    live grant is left on an erased subject."""
    if db.engine != "postgresql":
        pytest.skip("two concurrent write transactions need PostgreSQL (SQLite has one writer)")
    kit, _ = kits
    for _ in range(3):
        referral = await kit.send()
        answers = await asyncio.gather(
            kit.client.post(
                f"/v1/subjects/{kit.subject}/consents",
                json=grant_body(kit.world, categories=CATEGORIES),
                headers=kit.staff("vsp"),
            ),
            erase(kit),
            kit.deliver(referral["id"]),
            kit.client.post(f"/v1/subjects/{kit.subject}/access-links", headers=kit.staff("vsp")),
            kit.client.post("/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp")),
        )
        assert all(a.status_code < 300 or a.status_code == 409 for a in answers), [
            (a.status_code, a.text) for a in answers
        ]
        grants = await kit.client.get(
            f"/v1/subjects/{kit.subject}/consents", headers=kit.staff("vsp")
        )
        assert grants.status_code == 200, grants.text
        assert all(g["revoked_at"] is not None for g in grants.json()["items"]), grants.text
        kit.subject, kit.consent = await new_consent(kit.client, kit.world, categories=CATEGORIES)


@pytest.mark.race
async def test_an_erasure_waits_for_a_send_in_flight_and_destroys_its_fields(
    kits: tuple[Kit, RequestKit], app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send paused after its decision, before its commit, holds the subject's row
    FOR SHARE (lock 0) and the policy lock shared: the erasure waits for it (on
    SQLite for the one connection), then finds the new referral and destroys its
    fields. Had the send read the subject without locking it, the erasure would
    hold the row FOR UPDATE while waiting for the policy lock, and the send's insert
    (whose foreign key locks the subject's row) would wait for the erasure: a cycle."""
    from service.referrals import service as referral_service
    from tests.referrals.support import secret_bytes

    kit, _ = kits
    reached, go = asyncio.Event(), asyncio.Event()
    original = referral_service.decide_at_release

    async def decide_then_pause(*args: Any, **kwargs: Any) -> Any:
        decision = await original(*args, **kwargs)
        reached.set()
        await go.wait()
        return decision

    monkeypatch.setattr(referral_service, "decide_at_release", decide_then_pause)
    send = asyncio.create_task(
        kit.client.post("/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp"))
    )
    try:
        await asyncio.wait_for(reached.wait(), 10)
        erasure = asyncio.create_task(erase(kit))
        for _ in range(200):  # round trips and loop turns: the erasure runs until it waits
            await asyncio.sleep(0.005)
        assert not erasure.done(), erasure.result().text
    finally:
        go.set()
    sent, erased = await asyncio.wait_for(asyncio.gather(send, erasure), 20)
    assert sent.status_code == 201, sent.text
    assert erased.status_code == 200, erased.text
    assert [kept for _, kept in await secret_bytes(app, sent.json()["id"])] == [False] * len(
        sent.json()["fields"]
    )
    again = await kit.client.post(
        "/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp")
    )
    assert again.status_code == 409, again.text
