"""SECURITY-TESTS D10: the survivor withdraws a consent through their access link
while a caseworker of the recipient delivers a referral sent under it (D03 with the
survivor as the actor), on both engines.

The interleavings are forced, not slept into: the delivery is paused after its
decision and before its commit (a wrapper around `decide_at_release`, as D13
does), or the survivor's withdrawal is paused after its revocation and its
link-use entry and before its commit (a wrapper around `record_link_use`). The
other request is then started and shown to wait: on PostgreSQL for the policy lock
(the advisory lock a release holds shared and a revocation exclusively,
migration 0100), on SQLite for the one connection (pool_size=1, BEGIN IMMEDIATE),
which the paused transaction holds. Either way the log must satisfy O-order(C): no
`disclosure` entry under the consent after the survivor's `consent.revoked`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from service.audit.models import AuditEntry
from service.disclosures import release as door
from service.subjects import service as subject_service
from tests.referrals.support import CATEGORIES, PLANTED, Kit, secret_bytes
from tests.support.databases import TestDatabase

pytestmark = pytest.mark.race

# Bounds, not sleeps: how long a paused request may take to reach its pause point,
# and how many probes (each one a database round trip) a waiter may take to queue.
REACH_SECONDS = 10
PROBES = 500
# The policy lock (migration 0100): advisory lock (audit_head's OID, 0).
POLICY_LOCK_WAITERS = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = 'audit_head'::regclass::oid AND objid = 0"
)


class _Pause:
    """A pause point: the patched call has run and waits until the test lets it go."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    async def hold(self) -> None:
        self.reached.set()
        await self.go.wait()

    async def wait_reached(self, request: asyncio.Task[httpx.Response]) -> None:
        reached = asyncio.ensure_future(self.reached.wait())
        try:
            await asyncio.wait(
                [request, reached], timeout=REACH_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            reached.cancel()
        if not self.reached.is_set():
            if not request.done():
                pytest.fail(f"the request did not reach its pause point in {REACH_SECONDS} s")
            pytest.fail(f"the request finished before its pause point: {request.result().text}")


async def _survivor_link(kit: Kit) -> dict[str, str]:
    """The survivor's access link for the kit's subject, issued by the VSP's caseworker."""
    r = await kit.client.post(
        f"/v1/subjects/{kit.subject}/access-links",
        json={"lifetime_seconds": 900},
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def _withdraw(kit: Kit, survivor: dict[str, str]) -> httpx.Response:
    return await kit.client.post(
        f"/v1/consents/{kit.consent['id']}/revoke",
        json={"reason": "I changed my mind"},
        headers=survivor,
    )


async def _log(app: Any) -> list[dict[str, Any]]:
    """Every audit entry's document, in sequence order."""
    async with app.state.sessionmaker() as session:
        bodies = (await session.scalars(select(AuditEntry.body).order_by(AuditEntry.seq))).all()
    return [json.loads(b) for b in bodies]


def _entry(log: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    (entry,) = [e for e in log if e["seq"] == seq]
    return entry


def _revocation(log: list[dict[str, Any]], consent_id: str) -> dict[str, Any]:
    """The one `consent.revoked` entry for the consent."""
    found = [
        e
        for e in log
        if e["action"] == "consent.revoked" and e["details"]["consent_id"] == consent_id
    ]
    assert len(found) == 1, found
    return found[0]


def _order_violations(log: list[dict[str, Any]], consent_id: str) -> list[int]:
    """O-order(C): the `disclosure` entries under the consent that follow its revocation."""
    revoked = _revocation(log, consent_id)["seq"]
    return [
        e["seq"]
        for e in log
        if e["action"] == "disclosure"
        and e["details"].get("consent_id") == consent_id
        and e["seq"] > revoked
    ]


async def _shows_waiting(app: Any, db: TestDatabase, request: asyncio.Task[httpx.Response]) -> None:
    """The second request waits for the paused transaction and does not finish."""
    if db.engine == "postgresql":
        waiters = 0
        for _ in range(PROBES):  # each probe is a round trip that lets the request run
            async with app.state.engine.connect() as probe:
                waiters = int(await probe.scalar(POLICY_LOCK_WAITERS))
            if waiters or request.done():
                break
        assert waiters == 1, "the second request never waited for the policy lock"
    else:
        # The app's one connection is held by the paused transaction.
        for _ in range(PROBES):
            await asyncio.sleep(0)
        assert app.state.engine.sync_engine.pool.checkedout() == 1
    assert not request.done(), request.result().text


async def _survivor_view(
    kit: Kit, survivor: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the survivor's own endpoints show: the consent, and their accounting of
    disclosures."""
    consents = await kit.client.get(f"/v1/subjects/{kit.subject}/consents", headers=survivor)
    assert consents.status_code == 200, consents.text
    mine = [c for c in consents.json()["items"] if c["id"] == kit.consent["id"]]
    assert len(mine) == 1
    accounting = await kit.client.get(f"/v1/subjects/{kit.subject}/disclosures", headers=survivor)
    assert accounting.status_code == 200, accounting.text
    items: list[dict[str, Any]] = accounting.json()["items"]
    return mine[0], items


def _assert_withheld_all(delivery: dict[str, Any], names: list[str] | None = None) -> None:
    """Every field (by default every planted one) listed as withheld, each with the
    policies that denied it."""
    assert delivery["released"] == []
    assert sorted(w["name"] for w in delivery["withheld"]) == sorted(names or PLANTED)
    # Denied because no live consent covers the release (the engine's default deny),
    # not merely because the bytes were shredded.
    assert [w["policies"] for w in delivery["withheld"]] == [["default-deny"]] * len(
        delivery["withheld"]
    )


def _assert_survivor_revocation(entry: dict[str, Any], kit: Kit) -> None:
    """The revocation entry names the survivor's link, never a staff member or org."""
    assert entry["actor"]["principal"].startswith("survivor-link:")
    assert entry["actor"]["org"] is None
    assert entry["subject"] == kit.subject
    assert "I changed my mind" not in json.dumps(entry)  # free text stays out of the log


async def test_D10_a_survivor_withdrawal_waits_for_a_delivery_in_flight(
    kit: Kit, app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delivery has decided (consent live) and not committed; the survivor's
    withdrawal waits for it, so the release is wholly before the revocation in the
    log; the next delivery withholds every field."""
    referral = await kit.send()
    survivor = await _survivor_link(kit)
    pause = _Pause()
    original = door.decide_at_release

    async def decide_then_pause(*args: Any, **kwargs: Any) -> Any:
        decision = await original(*args, **kwargs)
        await pause.hold()
        return decision

    monkeypatch.setattr(door, "decide_at_release", decide_then_pause)
    delivery = asyncio.create_task(kit.deliver(referral["id"]))
    await pause.wait_reached(delivery)
    withdrawal = asyncio.create_task(_withdraw(kit, survivor))
    try:
        await _shows_waiting(app, db, withdrawal)
    finally:
        pause.go.set()  # a failed check must not leave the delivery paused
        await asyncio.wait([delivery, withdrawal], timeout=REACH_SECONDS)
    delivered, withdrawn = delivery.result(), withdrawal.result()

    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["withheld"] == []
    assert dict((await kit.open(delivered.json())).values) == PLANTED
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["live"] is False
    log = await _log(app)
    revocation = _revocation(log, kit.consent["id"])
    _assert_survivor_revocation(revocation, kit)
    disclosure = _entry(log, delivered.json()["disclosure_seq"])
    assert disclosure["action"] == "disclosure"
    assert disclosure["details"]["consent_id"] == kit.consent["id"]
    assert disclosure["seq"] < revocation["seq"]
    assert _order_violations(log, kit.consent["id"]) == []
    # Released before the withdrawal: kept until the retention sweep, not shredded.
    assert await secret_bytes(app, referral["id"]) == [(n, True) for n in sorted(PLANTED)]

    again = await kit.deliver(referral["id"])
    assert again.status_code == 200, again.text
    _assert_withheld_all(again.json())
    assert dict((await kit.open(again.json())).values) == {}
    log = await _log(app)
    assert _entry(log, again.json()["disclosure_seq"])["action"] == "withheld"
    assert again.json()["disclosure_seq"] > revocation["seq"]
    assert _order_violations(log, kit.consent["id"]) == []

    consent, disclosures = await _survivor_view(kit, survivor)
    assert consent["live"] is False
    assert consent["revoked_at"] is not None
    assert consent["revoked_at"] == withdrawn.json()["revoked_at"]
    # The one release, made before the withdrawal, and nothing since.
    assert [(d["seq"], d["recipient_org_id"], d["categories"]) for d in disclosures] == [
        (disclosure["seq"], str(kit.world.orgs["shelter"]), sorted(CATEGORIES))
    ]


async def test_D10_a_delivery_waits_for_the_survivors_withdrawal_and_withholds(
    kit: Kit, app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The survivor's withdrawal has revoked and audited and not committed; the
    delivery waits for it, then decides on the revoked consent: every field
    withheld, the sealed keys already destroyed, its entry after the revocation."""
    referral = await kit.send()
    survivor = await _survivor_link(kit)
    pause = _Pause()
    original = subject_service.record_link_use

    async def use_then_pause(*args: Any, **kwargs: Any) -> None:
        await original(*args, **kwargs)
        if kwargs["what"] == "consent.revoke":
            await pause.hold()

    monkeypatch.setattr(subject_service, "record_link_use", use_then_pause)
    withdrawal = asyncio.create_task(_withdraw(kit, survivor))
    await pause.wait_reached(withdrawal)
    delivery = asyncio.create_task(kit.deliver(referral["id"]))
    try:
        await _shows_waiting(app, db, delivery)
    finally:
        pause.go.set()  # a failed check must not leave the withdrawal paused
        await asyncio.wait([withdrawal, delivery], timeout=REACH_SECONDS)
    withdrawn, delivered = withdrawal.result(), delivery.result()

    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["live"] is False
    assert delivered.status_code == 200, delivered.text
    _assert_withheld_all(delivered.json())
    opened = await kit.open(delivered.json())
    assert dict(opened.values) == {}
    assert sorted(w.name for w in opened.withheld) == sorted(PLANTED)
    assert await secret_bytes(app, referral["id"]) == [(n, False) for n in sorted(PLANTED)]
    log = await _log(app)
    revocation = _revocation(log, kit.consent["id"])
    _assert_survivor_revocation(revocation, kit)
    entry = _entry(log, delivered.json()["disclosure_seq"])
    assert entry["action"] == "withheld"
    assert entry["details"]["consent_id"] == kit.consent["id"]
    assert entry["details"]["released"] == []
    assert entry["seq"] > revocation["seq"]
    assert not [e for e in log if e["action"] == "disclosure"]
    assert _order_violations(log, kit.consent["id"]) == []

    state = await kit.client.get(f"/v1/referrals/{referral['id']}", headers=kit.staff("vsp"))
    assert state.json()["shredded_at"] is not None
    consent, disclosures = await _survivor_view(kit, survivor)
    assert consent["live"] is False
    assert consent["revoked_at"] is not None
    assert consent["revoked_at"] == withdrawn.json()["revoked_at"]
    assert disclosures == []  # nothing about the survivor left the service


async def test_D10_concurrent_deliveries_and_the_survivors_withdrawal_are_ordered(
    kit: Kit, app: Any
) -> None:
    """Unforced interleaving: six deliveries and the withdrawal at once. Each delivery
    falls wholly before the revocation (released, a `disclosure` entry below it, the
    bytes kept) or wholly after (withheld, its entry above it, the bytes destroyed)."""
    referrals = [(await kit.send({"phone": f"+1-555-03{i:02d}"}))["id"] for i in range(6)]
    survivor = await _survivor_link(kit)

    # The withdrawal starts between the deliveries, so that it can fall among them.
    requests = [kit.deliver(rid) for rid in referrals]
    answers = await asyncio.gather(*requests[:3], _withdraw(kit, survivor), *requests[3:])
    withdrawn = answers.pop(3)
    delivered = answers
    assert withdrawn.status_code == 200, withdrawn.text
    assert all(r.status_code == 200 for r in delivered), [r.text for r in delivered]
    log = await _log(app)
    revoked = _revocation(log, kit.consent["id"])["seq"]
    before: list[int] = []
    for rid, r in zip(referrals, delivered, strict=True):
        body = r.json()
        entry = _entry(log, body["disclosure_seq"])
        if body["released"]:
            assert [f["name"] for f in body["released"]] == ["phone"]
            assert body["withheld"] == []
            assert entry["action"] == "disclosure"
            assert entry["seq"] < revoked
            assert await secret_bytes(app, rid) == [("phone", True)]
            before.append(entry["seq"])
        else:
            _assert_withheld_all(body, names=["phone"])
            assert entry["action"] == "withheld"
            assert entry["seq"] > revoked
            assert await secret_bytes(app, rid) == [("phone", False)]
    assert _order_violations(log, kit.consent["id"]) == []
    consent, disclosures = await _survivor_view(kit, survivor)
    assert consent["live"] is False
    assert [d["seq"] for d in disclosures] == sorted(before)
