"""Referral lifecycle races (SECURITY-TESTS D11) and concurrent Idempotency-Key
retries (D12), on both engines. The requests run concurrently through the app (each
with its own session and transaction); on PostgreSQL they meet on row locks, on
SQLite on the single write lock. Either way exactly one of two conflicting
transitions wins and the other is a 409 that changes nothing.

Sends hold the policy lock shared, as deliveries do, and meet only on the key locks
of what must not be sent twice (an Idempotency-Key, then an envelope id): two sends
of one key make one referral, sends of other keys and deliveries run beside a send
in flight, and a send waits for a change to what it reads (the policy lock held
exclusively)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from service.audit.models import AuditEntry
from service.audit.ordering import key_lock_id, lock_policy, share_policy
from service.idempotency.service import lock_name
from service.referrals import service as referral_service
from service.referrals.models import Referral, ReferralField
from tests.referrals.support import Kit
from tests.support.databases import TestDatabase

pytestmark = pytest.mark.race


async def _post(kit: Kit, rid: str, action: str, org: str, body: Any = None) -> httpx.Response:
    return await kit.client.post(f"/v1/referrals/{rid}/{action}", json=body, headers=kit.staff(org))


async def _fields(app: Any, rid: str) -> list[ReferralField]:
    async with app.state.sessionmaker() as session:
        referral = await session.get(Referral, uuid.UUID(rid))
        assert referral is not None
        rows = await session.scalars(
            select(ReferralField).where(ReferralField.referral_id == referral.id)
        )
        return list(rows.all())


@pytest.mark.parametrize("attempt", range(3))
async def test_D11_withdraw_versus_deliver_exactly_one_wins(
    kit: Kit, app: Any, attempt: int
) -> None:
    rid = (await kit.send())["id"]
    withdraw, deliver = await asyncio.gather(
        _post(kit, rid, "withdraw", "vsp"), _post(kit, rid, "deliver", "shelter")
    )
    assert sorted([withdraw.status_code, deliver.status_code]) == [200, 409], (
        withdraw.text,
        deliver.text,
    )
    fields = await _fields(app, rid)
    if withdraw.status_code == 200:
        # The withdraw won: nothing was released and the sealed keys are gone.
        assert all(f.ciphertext is None and f.sealed_key is None for f in fields)
        assert all(f.released_at is None for f in fields)
        assert (await _post(kit, rid, "deliver", "shelter")).status_code == 409
    else:
        assert deliver.json()["released"]
        assert all(f.released_at is not None for f in fields)


@pytest.mark.parametrize("attempt", range(3))
async def test_D11_accept_versus_decline_exactly_one_wins(kit: Kit, attempt: int) -> None:
    rid = (await kit.send())["id"]
    assert (await _post(kit, rid, "deliver", "shelter")).status_code == 200
    accept, decline = await asyncio.gather(
        _post(kit, rid, "accept", "shelter"),
        _post(kit, rid, "decline", "shelter", {"reason": "no_capacity"}),
    )
    assert sorted([accept.status_code, decline.status_code]) == [200, 409]
    state = (await kit.client.get(f"/v1/referrals/{rid}", headers=kit.staff("vsp"))).json()
    assert state["status"] == ("accepted" if accept.status_code == 200 else "declined")


async def test_D11_close_before_accept_is_409(kit: Kit) -> None:
    rid = (await kit.send())["id"]
    assert (await _post(kit, rid, "deliver", "shelter")).status_code == 200
    r = await _post(kit, rid, "close", "shelter", {"outcome": "services_provided"})
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"


async def test_D12_concurrent_retries_with_one_key_make_one_referral(kit: Kit, app: Any) -> None:
    body = kit.body(kit.seal())
    headers = {**kit.staff("vsp"), "Idempotency-Key": "concurrent-retry-1"}
    first, second = await asyncio.gather(
        kit.client.post("/v1/referrals", json=body, headers=headers),
        kit.client.post("/v1/referrals", json=body, headers=headers),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json() == second.json()
    async with app.state.sessionmaker() as session:
        ids = (await session.scalars(select(Referral.id))).all()
    assert [str(i) for i in ids] == [first.json()["id"]]
    # The same key with another body: refused, nothing new stored.
    other = await kit.client.post(
        "/v1/referrals", json={**body, "urgency": "routine"}, headers=headers
    )
    assert other.status_code == 422
    async with app.state.sessionmaker() as session:
        assert len((await session.scalars(select(Referral.id))).all()) == 1


# Sends under the policy lock held shared, ordered against each other only by their
# key locks (service/audit/ordering.py `lock_key`; service/referrals/service.py
# `create`). The interleavings are forced: the first send is paused after its checks
# and decision, before its commit (a wrapper around `decide_at_release`, as D10 and
# D13 do), while it holds its key locks.

REACH_SECONDS = 10
PROBES = 500
POLICY_LOCK_WAITERS = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = 'audit_head'::regclass::oid AND objid = 0"
)
KEY_LOCK_WAITERS = text(
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND classid = 'audit_pending'::regclass::oid AND objsubid = 2"
)


class _Pause:
    """Pauses the first call of the patched function, after it ran, until `go`."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.go = asyncio.Event()
        self.calls = 0

    async def hold(self) -> None:
        self.calls += 1
        if self.calls == 1:
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
            pytest.fail(
                request.result().text if request.done() else "the send never reached its pause"
            )


def _pause_sends(monkeypatch: pytest.MonkeyPatch) -> _Pause:
    pause = _Pause()
    original = referral_service.decide_at_release

    async def decide_then_pause(*args: Any, **kwargs: Any) -> Any:
        decision = await original(*args, **kwargs)
        await pause.hold()
        return decision

    monkeypatch.setattr(referral_service, "decide_at_release", decide_then_pause)
    return pause


async def _waits(app: Any, db: TestDatabase, request: asyncio.Task[httpx.Response]) -> list[int]:
    """The request waits and does not finish: on PostgreSQL for a key lock (the ids it
    waits for), on SQLite for the one connection, which the paused send holds."""
    waiting: list[int] = []
    if db.engine == "postgresql":
        for _ in range(PROBES):  # each probe is a round trip that lets the request run
            async with app.state.engine.connect() as probe:
                waiting = list((await probe.scalars(KEY_LOCK_WAITERS)).all())
            if waiting or request.done():
                break
        assert len(waiting) == 1, "the second send never waited for a key lock"
    else:
        for _ in range(PROBES):
            await asyncio.sleep(0)
        assert app.state.engine.sync_engine.pool.checkedout() == 1
    assert not request.done(), request.result().text
    return waiting


async def _referral_count(app: Any) -> int:
    async with app.state.sessionmaker() as session:
        return len((await session.scalars(select(Referral.id))).all())


async def _sent_entries(app: Any) -> list[str]:
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEntry.body).where(AuditEntry.action == "referral.sent")
        )
        return [json.loads(body)["details"]["referral_id"] for body in rows.all()]


async def test_D12_a_retry_waits_for_the_key_lock_and_replays_the_first(
    kit: Kit, app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sends with one Idempotency-Key and body, the first paused before its
    commit: the second waits for that key's lock (not for the policy lock), then
    finds the first's referral and answers it with 200; one referral, one entry."""
    body = kit.body(kit.seal())
    headers = {**kit.staff("vsp"), "Idempotency-Key": "paused-retry"}
    pause = _pause_sends(monkeypatch)
    first = asyncio.create_task(kit.client.post("/v1/referrals", json=body, headers=headers))
    await pause.wait_reached(first)
    second = asyncio.create_task(kit.client.post("/v1/referrals", json=body, headers=headers))
    try:
        waiting = await _waits(app, db, second)
    finally:
        pause.go.set()
        await asyncio.wait([first, second], timeout=REACH_SECONDS)
    if db.engine == "postgresql":
        key = lock_name(kit.world.orgs["vsp"], "paused-retry")
        assert waiting == [key_lock_id("idempotency", key) & 0xFFFFFFFF]
    made, replayed = first.result(), second.result()
    assert made.status_code == 201, made.text
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == made.json()
    assert await _referral_count(app) == 1
    assert await _sent_entries(app) == [made.json()["id"]]


async def test_D12_concurrent_sends_of_one_envelope_make_one_referral(
    kit: Kit, app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same envelope sent twice at once (no Idempotency-Key), the first paused
    before its commit: the second waits for the envelope id's lock, then finds the
    first's referral and is refused as a replay (422 envelope-replayed); one referral,
    one `referral.sent` entry."""
    body = kit.body(kit.seal())
    pause = _pause_sends(monkeypatch)
    first = asyncio.create_task(
        kit.client.post("/v1/referrals", json=body, headers=kit.staff("vsp"))
    )
    await pause.wait_reached(first)
    second = asyncio.create_task(
        kit.client.post("/v1/referrals", json=body, headers=kit.staff("vsp"))
    )
    try:
        waiting = await _waits(app, db, second)
    finally:
        pause.go.set()
        await asyncio.wait([first, second], timeout=REACH_SECONDS)
    made, refused = first.result(), second.result()
    assert made.status_code == 201, made.text
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("envelope-replayed")
    if db.engine == "postgresql":
        assert waiting == [key_lock_id("envelope", made.json()["envelope_id"]) & 0xFFFFFFFF]
    assert await _referral_count(app) == 1
    assert await _sent_entries(app) == [made.json()["id"]]


async def test_D12_unforced_sends_of_one_envelope_make_one_referral(kit: Kit, app: Any) -> None:
    """Four sends of one envelope at once, two of them with one Idempotency-Key:
    one referral; every other answer is its replay (200) or an envelope replay (422)."""
    body = kit.body(kit.seal())
    keyed = {**kit.staff("vsp"), "Idempotency-Key": "unforced-1"}
    answers = await asyncio.gather(
        kit.client.post("/v1/referrals", json=body, headers=keyed),
        kit.client.post("/v1/referrals", json=body, headers=kit.staff("vsp")),
        kit.client.post("/v1/referrals", json=body, headers=keyed),
        kit.client.post("/v1/referrals", json=body, headers=kit.staff("vsp")),
    )
    codes = [r.status_code for r in answers]
    assert codes.count(201) == 1, [r.text for r in answers]
    assert set(codes) <= {200, 201, 422}, [r.text for r in answers]
    made = next(r for r in answers if r.status_code == 201).json()
    for r in answers:
        if r.status_code == 200:
            assert r.json() == made
        elif r.status_code == 422:
            assert r.json()["type"].endswith("envelope-replayed")
    assert await _referral_count(app) == 1
    assert await _sent_entries(app) == [made["id"]]


def _postgresql_only(db: TestDatabase) -> None:
    if db.engine != "postgresql":
        pytest.skip("SQLite has one writer (BEGIN IMMEDIATE): sends run one at a time")


async def test_sends_of_other_keys_run_side_by_side(
    kit: Kit, app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send paused before its commit (holding the policy lock shared and its key
    locks) does not stop another send, of another key and envelope, nor a delivery."""
    _postgresql_only(db)
    delivered = await kit.send()
    pause = _pause_sends(monkeypatch)
    headers = {**kit.staff("vsp"), "Idempotency-Key": "side-1"}
    first = asyncio.create_task(
        kit.client.post("/v1/referrals", json=kit.body(kit.seal()), headers=headers)
    )
    await pause.wait_reached(first)
    try:
        other = await asyncio.wait_for(
            kit.client.post(
                "/v1/referrals",
                json=kit.body(kit.seal()),
                headers={**kit.staff("vsp"), "Idempotency-Key": "side-2"},
            ),
            REACH_SECONDS,
        )
        delivery = await asyncio.wait_for(kit.deliver(delivered["id"]), REACH_SECONDS)
        assert not first.done()
    finally:
        pause.go.set()
        await asyncio.wait([first], timeout=REACH_SECONDS)
    assert other.status_code == 201, other.text
    assert delivery.status_code == 200, delivery.text
    assert first.result().status_code == 201, first.result().text
    assert await _referral_count(app) == 3


async def test_a_send_holds_the_policy_lock_shared(kit: Kit, app: Any, db: TestDatabase) -> None:
    """A send completes while another transaction holds the policy lock shared (a
    delivery deciding); while one holds it exclusively (a revocation in progress) the
    send waits for the policy lock, and completes once that transaction commits."""
    _postgresql_only(db)
    async with app.state.sessionmaker() as holder:
        await share_policy(holder)
        try:
            sent = await asyncio.wait_for(kit.send(), REACH_SECONDS)
        finally:
            await holder.rollback()
    assert sent["status"] == "sent"
    async with app.state.sessionmaker() as holder:
        await lock_policy(holder)
        send = asyncio.create_task(
            kit.client.post("/v1/referrals", json=kit.body(kit.seal()), headers=kit.staff("vsp"))
        )
        try:
            waiters = 0
            for _ in range(PROBES):
                async with app.state.engine.connect() as probe:
                    waiters = int(await probe.scalar(POLICY_LOCK_WAITERS))
                if waiters or send.done():
                    break
            assert waiters == 1, "the send never waited for the policy lock"
            assert not send.done(), send.result().text
        finally:
            await holder.commit()
    await asyncio.wait([send], timeout=REACH_SECONDS)
    assert send.result().status_code == 201, send.result().text
    assert await _referral_count(app) == 2
