"""Every audited write holds the audit head only inside its COMMIT (issue 26).

A consent, subject, access-link, records-request or export write stages its entry
(service/audit/at_commit.py) and takes the append queue and the head row only in
the commit-time trigger; only a change that a release reads holds the policy lock,
and `lock_policy` holds that lock alone (service/audit/ordering.py). The lock tests
are PostgreSQL's (SQLite's BEGIN IMMEDIATE serializes whole transactions); the
ordering of a revocation against a release in flight, and exports bounded by time
over entries whose times are out of sequence order, run on both engines where they
can."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent, append
from service.audit.models import AuditEntry
from service.audit.ordering import (
    KEY_NAMESPACES,
    key_lock_id,
    lock_head,
    lock_key,
    lock_policy,
    share_policy,
)
from service.auth.principals import Role
from tests.records_requests.support import VALUES, make_request_kit
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_consent
from tests.support.world import World

POLICY, QUEUE = 0, 1
HELD = text(
    "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = 'audit_head'::regclass::oid AND objid = :key"
)


def _postgresql_only(db: TestDatabase) -> None:
    if db.engine != "postgresql":
        pytest.skip("SQLite has one writer (BEGIN IMMEDIATE): no policy lock or queue")


async def _held(session: AsyncSession, key: int) -> set[str]:
    return set((await session.scalars(HELD, {"key": key})).all())


async def _would_wait(session: AsyncSession, call: Any) -> bool:
    """Whether `call` in `session` waits for a lock (200 ms), then roll it back."""
    await session.execute(text("SET LOCAL lock_timeout = '200ms'"))
    failure: DBAPIError | None = None
    try:
        await call(session)
    except DBAPIError as exc:
        failure = exc
    await session.rollback()
    if failure is not None and "lock timeout" not in str(failure):
        raise failure
    return failure is not None


def _event(name: str, **details: Any) -> AuditEvent:
    return AuditEvent(action="test.event", actor=None, actor_label=name, details=details)


async def _actions(app: Any) -> list[tuple[int, str, dict[str, Any]]]:
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
        return [(r.seq, r.action, json.loads(r.body)["details"]) for r in rows]


async def test_lock_policy_holds_the_policy_lock_and_not_the_head(
    app: Any, db: TestDatabase
) -> None:
    _postgresql_only(db)
    factory = app.state.sessionmaker
    async with factory() as change, factory() as other:
        await lock_policy(change)
        assert await _held(change, POLICY) == {"ExclusiveLock"}
        assert await _held(change, QUEUE) == set()
        assert await _would_wait(other, share_policy)  # no release decides meanwhile
        staged = await stage(change, _event("change", who="change"), clock=app.state.clock)
        assert await _held(change, POLICY) == {"ExclusiveLock"}  # not also shared
        assert await _held(change, QUEUE) == set()  # the queue only in the COMMIT
        await change.commit()
        assert staged.committed_seq() == 0
    assert [(seq, d["who"]) for seq, _, d in await _actions(app)] == [(0, "change")]


async def test_a_staged_write_holds_no_audit_lock_before_its_commit(
    app: Any, db: TestDatabase
) -> None:
    _postgresql_only(db)
    factory = app.state.sessionmaker
    async with factory() as writer, factory() as other:
        staged = await stage(writer, _event("writer"), clock=app.state.clock)
        # The policy lock shared, as a release: the queue and the row only in COMMIT.
        assert await _held(writer, POLICY) == {"ShareLock"}
        assert await _held(writer, QUEUE) == set()

        async def append_beside(session: AsyncSession) -> None:
            await share_policy(session)
            await lock_head(session)  # the queue and the head row

        assert not await _would_wait(other, append_beside)
        assert await _would_wait(other, lock_policy)  # a change waits for it
        await writer.commit()
        assert staged.committed_seq() == 0


async def test_lock_policy_in_a_release_is_refused(app: Any, db: TestDatabase) -> None:
    """A release holds the policy lock shared; taking it exclusively too would let
    two releases wait on each other."""
    async with app.state.sessionmaker() as session:
        await share_policy(session)
        with pytest.raises(RuntimeError, match="shared"):
            await lock_policy(session)
        await session.rollback()


async def test_subjects_and_consents_are_created_while_a_release_is_in_flight(
    app: Any, db: TestDatabase, client: httpx.AsyncClient, world: World
) -> None:
    """Nothing a release reads before their commit: they hold the policy lock shared
    and the head only in their COMMIT, so they never wait for a release (they used
    to hold the policy lock exclusively from their append to their commit), with an
    Idempotency-Key too (whose check used to take the policy lock exclusively)."""
    _postgresql_only(db)
    staff = world.headers("vsp", Role.caseworker)
    async with app.state.sessionmaker() as change:
        await share_policy(change)
        subject, consent = await asyncio.wait_for(new_consent(client, world), timeout=10)
        r = await asyncio.wait_for(
            client.post("/v1/subjects", json={}, headers=world.headers("vsp", Role.caseworker)),
            timeout=10,
        )
        assert r.status_code == 201, r.text
        keyed = {**staff, "Idempotency-Key": "in-flight-subject"}
        r = await asyncio.wait_for(client.post("/v1/subjects", json={}, headers=keyed), 10)
        assert r.status_code == 201, r.text
        keyed = {**staff, "Idempotency-Key": "in-flight-consent"}
        r = await asyncio.wait_for(
            client.post(f"/v1/subjects/{subject}/consents", json=grant_body(world), headers=keyed),
            10,
        )
        assert r.status_code == 201, r.text
        await change.rollback()
    actions = [a for _, a, _ in await _actions(app)]
    assert actions[-5:] == [
        "subject.created",
        "consent.created",
        "subject.created",
        "subject.created",
        "consent.created",
    ]
    assert consent["subject_id"] == subject


KEYS_HELD = text(
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = 'audit_pending'::regclass::oid AND objsubid = 2"
)


def test_key_lock_ids_keep_namespaces_apart() -> None:
    """The low four bits name the namespace, so an idempotency key and an envelope
    id never share a lock, whatever the hash; the id is a signed 32-bit integer."""
    for key in ("k", "x" * 200, "org:key", ""):
        ids = [key_lock_id(namespace, key) for namespace in KEY_NAMESPACES]
        assert [i & 0xF for i in ids] == list(range(len(KEY_NAMESPACES)))
        assert all(-(2**31) <= i < 2**31 for i in ids)
    assert key_lock_id("idempotency", "a") != key_lock_id("idempotency", "b")
    with pytest.raises(ValueError, match="not in tuple"):
        key_lock_id("another", "k")


async def test_lock_key_comes_after_the_policy_lock_in_one_order(
    app: Any, db: TestDatabase
) -> None:
    """Both engines: refused without the policy lock, refused out of the order of
    KEY_NAMESPACES or for a second key of one namespace (either could close a cycle
    of waits); the same key again is a no-op."""
    async with app.state.sessionmaker() as session:
        with pytest.raises(RuntimeError, match="after the policy lock"):
            await lock_key(session, "idempotency", "k")
        await share_policy(session)
        await lock_key(session, "envelope", "e")
        with pytest.raises(RuntimeError, match="out of order"):
            await lock_key(session, "idempotency", "k")
        with pytest.raises(RuntimeError, match="out of order"):
            await lock_key(session, "envelope", "another")
        await lock_key(session, "envelope", "e")
        await session.rollback()
    async with app.state.sessionmaker() as session:
        await lock_policy(session)
        await lock_key(session, "idempotency", "k")
        await lock_key(session, "envelope", "e")
        await session.rollback()


async def test_a_key_lock_stops_only_the_same_key(app: Any, db: TestDatabase) -> None:
    """PostgreSQL: a key lock is an advisory lock of its own class, held to the end of
    the transaction; another transaction waits for the same key only, and neither
    the policy lock (either mode) nor the append queue and head meet it."""
    _postgresql_only(db)
    factory = app.state.sessionmaker
    async with factory() as holder, factory() as other:
        await share_policy(holder)
        await lock_key(holder, "idempotency", "org:k1")
        await lock_key(holder, "envelope", "env-1")
        assert sorted(await holder.scalars(KEYS_HELD)) == sorted(
            key_lock_id(n, k) & 0xFFFFFFFF
            for n, k in (("idempotency", "org:k1"), ("envelope", "env-1"))
        )
        assert await _held(holder, POLICY) == {"ShareLock"}
        assert await _held(holder, QUEUE) == set()

        async def same_key(session: AsyncSession) -> None:
            await share_policy(session)
            await lock_key(session, "idempotency", "org:k1")

        async def same_envelope(session: AsyncSession) -> None:
            await share_policy(session)
            await lock_key(session, "idempotency", "org:k2")
            await lock_key(session, "envelope", "env-1")

        async def other_keys(session: AsyncSession) -> None:
            await share_policy(session)
            await lock_key(session, "idempotency", "org:k2")
            await lock_key(session, "envelope", "env-2")
            await lock_head(session)  # the append queue and the head row

        async def envelope_named_like_the_key(session: AsyncSession) -> None:
            await share_policy(session)
            await lock_key(session, "envelope", "org:k1")

        assert await _would_wait(other, same_key)
        assert await _would_wait(other, same_envelope)
        assert not await _would_wait(other, other_keys)
        assert not await _would_wait(other, envelope_named_like_the_key)
        await holder.commit()
        assert not await _would_wait(other, same_key)  # released with the transaction


async def test_a_revocation_waits_for_a_release_in_flight_and_its_entry_follows(
    app: Any, db: TestDatabase, client: httpx.AsyncClient, world: World
) -> None:
    """O-order: a release that holds the policy lock shared (and has staged its
    disclosure) makes a revocation wait; the revocation's entry, appended in its own
    COMMIT, follows the disclosure's."""
    _postgresql_only(db)
    _, consent = await new_consent(client, world)
    async with app.state.sessionmaker() as release:
        await share_policy(release)
        await stage(release, _event("release", consent_id=consent["id"]), clock=app.state.clock)
        revoking = asyncio.create_task(
            client.post(
                f"/v1/consents/{consent['id']}/revoke",
                json={"reason": "withdrawn"},
                headers=world.headers("vsp", Role.caseworker),
            )
        )
        await asyncio.sleep(0.5)
        assert not revoking.done()  # waits for the release's policy lock
        await release.commit()
    revoked = await asyncio.wait_for(revoking, timeout=10)
    assert revoked.status_code == 200, revoked.text
    entries = await _actions(app)
    [disclosed] = [
        s for s, a, d in entries if a == "test.event" and d == {"consent_id": consent["id"]}
    ]
    [revocation] = [s for s, a, d in entries if a == "consent.revoked"]
    assert disclosed < revocation


async def test_recording_an_alleged_abuser_waits_for_a_release_in_flight(
    app: Any, db: TestDatabase, client: httpx.AsyncClient, world: World
) -> None:
    """The mark stops the grants its person gave from counting, so releases read it:
    it is a change, ordered against releases (the policy lock exclusively)."""
    _postgresql_only(db)
    subject, _ = await new_consent(client, world)
    async with app.state.sessionmaker() as release:
        await share_policy(release)
        recording = asyncio.create_task(
            client.post(
                f"/v1/subjects/{subject}/alleged-abusers",
                json={"person_ref": "ab" * 32},
                headers=world.headers("vsp", Role.caseworker),
            )
        )
        await asyncio.sleep(0.5)
        assert not recording.done()  # waits for the release's policy lock
        await release.commit()
    recorded = await asyncio.wait_for(recording, timeout=10)
    assert recorded.status_code == 201, recorded.text


async def test_a_records_request_delivery_decides_beside_a_release(
    app: Any, db: TestDatabase, client: httpx.AsyncClient, world: World
) -> None:
    """A records request's delivery holds the policy lock shared, as every release,
    not exclusively: it does not wait for a release in flight, and a change waits
    for it."""
    _postgresql_only(db)
    kit = await make_request_kit(client, world)
    made = await kit.made(legal_basis="consent", categories=["contact"])
    subject = await kit.subject()
    consent = await kit.consent(subject, ["contact"])
    envelope = kit.seal(made, subject, {"contact": VALUES["contact"]}, consent_id=consent)
    body = {"decision": "release", "consent_id": consent, "envelope": envelope}
    assert (await kit.respond(made["id"], body)).status_code == 200
    async with app.state.sessionmaker() as release:
        await share_policy(release)
        delivered = await asyncio.wait_for(kit.deliver(made["id"]), timeout=10)
        assert delivered.status_code == 200, delivered.text
        assert [f["name"] for f in delivered.json()["released"]] == ["contact"]
        await release.rollback()


async def test_an_export_bounded_by_time_finds_entries_whose_times_are_out_of_order(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    """An entry's time is when it was staged; its number, when it committed: times
    are not in sequence order. An export by `since`/`until` starts and stops its walk
    at the least and greatest matching numbers (service/audit/service.py
    `walk_bounds`), and returns exactly the entries of that window."""
    base = datetime(2031, 1, 1, tzinfo=UTC)

    class At:
        def __init__(self, minutes: int) -> None:
            self.at = base + timedelta(minutes=minutes)

        def now(self) -> datetime:
            return self.at

    marker = str(uuid.uuid4())
    async with app.state.sessionmaker() as session:
        for minutes in (10, 5, 20, 15, 30):
            await append(session, _event("t", marker=marker, m=minutes), clock=At(minutes))
        await session.commit()
    oversight = world.headers("oversight", Role.auditor)

    async def window(**bounds: datetime) -> list[int]:
        params = {k: v.isoformat() for k, v in bounds.items()}
        r = await client.get("/v1/audit/export", params=params, headers=oversight)
        assert r.status_code == 200, r.text
        lines = [json.loads(line) for line in r.content.split(b"\n") if line]
        return [
            e["details"]["m"]
            for e in lines
            if e.get("action") == "test.event" and e["details"].get("marker") == marker
        ]

    assert await window(since=base + timedelta(minutes=6)) == [10, 20, 15, 30]
    assert await window(until=base + timedelta(minutes=12)) == [10, 5]
    assert await window(since=base + timedelta(minutes=6), until=base + timedelta(minutes=16)) == [
        10,
        15,
    ]
    assert await window(since=base + timedelta(minutes=31)) == []


@pytest.mark.parametrize(
    "bound",
    ["0", "1700000000", "2026-12-01T00:00:00", "2026-12-01", "2026-12-01 00:00:00Z", "x" * 40],
)
async def test_an_export_bound_must_be_an_rfc3339_time_with_its_offset(
    client: httpx.AsyncClient, world: World, db: TestDatabase, bound: str
) -> None:
    """The OpenAPI document says format date-time; an epoch number or a time without
    its offset is a 422 problem naming the parameter, and records no export (found
    by the schemathesis contract run: `until=0` was taken as 1970)."""
    oversight = world.headers("oversight", Role.auditor)
    before = db.dump()
    for name in ("since", "until"):
        r = await client.get("/v1/audit/export", params={name: bound}, headers=oversight)
        assert r.status_code == 422, (name, bound, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert name in r.text
    assert db.dump() == before
    fine = await client.get(
        "/v1/audit/export", params={"until": "2026-12-01T00:00:00+01:00"}, headers=oversight
    )
    assert fine.status_code == 200, fine.text
