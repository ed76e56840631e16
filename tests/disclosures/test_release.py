"""Release-time decisions on both engines (DESIGN.md guarantee 2): a delivery decides
every field again at that moment, is audited in its own transaction, and the
sweep crypto-shreds what must not be kept."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.models import AuditEntry
from service.auth.principals import Principal, Role
from service.referrals.models import ReferralField
from service.retention import run_sweep
from service.sectors import Sector
from tests.referrals.support import CATEGORIES, PLANTED, Kit, secret_bytes
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_consent, new_subject


async def _entry(app: Any, seq: int) -> dict[str, Any]:
    async with app.state.sessionmaker() as session:
        row = (await session.scalars(select(AuditEntry).where(AuditEntry.seq == seq))).one()
        document: dict[str, Any] = json.loads(row.body)
        return document


async def test_D01_revoke_after_send_withholds_and_destroys_the_sealed_keys(
    kit: Kit, app: Any
) -> None:
    referral = await kit.send()
    r = await kit.client.post(
        f"/v1/consents/{kit.consent['id']}/revoke",
        json={"reason": "survivor asked"},
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 200
    assert await secret_bytes(app, referral["id"]) == [(n, False) for n in sorted(PLANTED)]
    r = await kit.deliver(referral["id"])
    assert r.status_code == 200
    delivery = r.json()
    assert delivery["released"] == []
    assert {w["name"] for w in delivery["withheld"]} == set(PLANTED)
    entry = await _entry(app, delivery["disclosure_seq"])
    assert entry["action"] == "withheld"
    cited = {p for w in entry["details"]["withheld"] for p in w["policies"]}
    assert cited
    assert "crypto-shredded" not in cited
    opened = await kit.open(delivery)
    assert dict(opened.values) == {}
    assert {w.name for w in opened.withheld} == set(PLANTED)


async def test_C12_recipient_removed_from_the_collaboration_is_withheld(kit: Kit) -> None:
    referral = await kit.send()
    r = await kit.client.delete(
        f"/v1/collaborations/{kit.world.collaboration_id}/members/{kit.world.orgs['shelter']}",
        headers=kit.world.headers("platform", Role.platform_admin),
    )
    assert r.status_code in (200, 204), r.text
    delivery = (await kit.deliver(referral["id"])).json()
    assert delivery["released"] == []
    assert all(w["policies"] for w in delivery["withheld"])


async def test_forbid_rule_added_after_send_withholds_that_field_only(kit: Kit, app: Any) -> None:
    referral = await kit.send()
    await kit.forbid_contact()
    delivery = (await kit.deliver(referral["id"])).json()
    withheld = {w["name"]: w for w in delivery["withheld"]}
    assert set(withheld) == {"phone"}
    assert withheld["phone"]["policies"] == [f"org/{kit.world.orgs['vsp']}/no-contact-to-shelters"]
    opened = await kit.open(delivery)
    assert dict(opened.values) == {k: v for k, v in PLANTED.items() if k != "phone"}
    entry = await _entry(app, delivery["disclosure_seq"])
    assert entry["details"]["org_rules"][0]["version"] == 1  # D09: the new version cited


async def test_F10_entry_matches_the_response_exactly(kit: Kit, app: Any) -> None:
    referral = await kit.send()
    await kit.forbid_contact()
    delivery = (await kit.deliver(referral["id"])).json()
    entry = await _entry(app, delivery["disclosure_seq"])
    assert entry["action"] == "disclosure"
    assert entry["subject"] == kit.subject
    assert entry["details"]["recipient_org"] == str(kit.world.orgs["shelter"])
    released = {
        f["name"]: hashlib.sha256(base64.b64decode(f["ciphertext"])).hexdigest()
        for f in delivery["released"]
    }
    assert {r["name"]: r["ciphertext_sha256"] for r in entry["details"]["released"]} == released
    assert [w["name"] for w in entry["details"]["withheld"]] == [
        w["name"] for w in delivery["withheld"]
    ]
    assert entry["details"]["policy_version"]
    assert "Zo" not in json.dumps(entry)  # never a value


async def test_second_delivery_decides_and_is_audited_again(kit: Kit) -> None:
    referral = await kit.send()
    first = (await kit.deliver(referral["id"])).json()
    second = (await kit.deliver(referral["id"])).json()
    assert second["disclosure_seq"] > first["disclosure_seq"]
    assert dict((await kit.open(second)).values) == PLANTED


async def test_F09_audit_append_failure_releases_nothing(
    kit: Kit, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.disclosures import release as deliver_module

    referral = await kit.send()

    async def failing_stage(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("INSERT INTO audit_pending", {}, Exception("injected fault"))

    before = db.dump()
    monkeypatch.setattr(deliver_module, "stage", failing_stage)
    r = await kit.deliver(referral["id"])
    assert r.status_code == 503, r.text
    assert "Retry-After" in r.headers
    assert "ciphertext" not in r.text
    assert "released" not in r.text
    assert db.dump() == before
    monkeypatch.undo()
    state = await kit.client.get(f"/v1/referrals/{referral['id']}", headers=kit.staff("vsp"))
    assert state.json()["status"] == "sent"
    assert (await kit.deliver(referral["id"])).status_code == 200  # the retry succeeds


async def _pg_execute(db: TestDatabase, *statements: str) -> None:
    """DDL on the test's own database, outside the service (an operator's fault)."""
    connection = await asyncpg.connect(
        make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def test_F09_append_failing_inside_the_commit_releases_nothing(
    kit: Kit, db: TestDatabase
) -> None:
    """PostgreSQL appends a release's entry in its COMMIT (migration 0110). A fault
    inside that append (here the entry's INSERT refused by a trigger) fails the
    commit: a 503 problem without ciphertext, the database unchanged, and the next
    delivery takes the next number."""
    if db.engine != "postgresql":
        pytest.skip("SQLite appends at once, under BEGIN IMMEDIATE (the test above)")
    referral = await kit.send()
    first = (await kit.deliver(referral["id"])).json()["disclosure_seq"]
    await _pg_execute(
        db,
        "CREATE FUNCTION f09_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'injected fault' USING ERRCODE = 'disk_full'; END $$",
        "CREATE TRIGGER f09_refuse BEFORE INSERT ON audit_entries "
        "FOR EACH ROW EXECUTE FUNCTION f09_refuse()",
    )
    before = db.dump()
    r = await kit.deliver(referral["id"])
    assert r.status_code == 503, r.text
    assert "Retry-After" in r.headers
    assert r.headers["content-type"] == "application/problem+json"
    assert "ciphertext" not in r.text
    assert "released" not in r.text
    assert db.dump() == before
    await _pg_execute(db, "DROP TRIGGER f09_refuse ON audit_entries")
    again = (await kit.deliver(referral["id"])).json()["disclosure_seq"]
    assert again == first + 1


async def _failing_commit(_self: AsyncSession) -> None:
    """Stands in for `AsyncSession.commit`: the commit fails after everything ran."""
    raise OperationalError("COMMIT", {}, Exception("injected fault"))


async def test_F09_commit_failure_builds_no_body(
    kit: Kit, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disclosure is decided and audited, then the commit fails: the response
    body, where ciphertext would leave, is never built (it is built after the
    commit, service/web/responses.py), and the database is unchanged."""
    from service.disclosures import release as deliver_module

    referral = await kit.send()
    built: list[object] = []
    original_build = deliver_module.build_delivery

    def recording_build(*args: Any, **kwargs: Any) -> dict[str, object]:
        built.append(kwargs["disclosure_seq"])
        return original_build(*args, **kwargs)

    before = db.dump()
    monkeypatch.setattr(deliver_module, "build_delivery", recording_build)
    monkeypatch.setattr(AsyncSession, "commit", _failing_commit)
    r = await kit.deliver(referral["id"])
    monkeypatch.undo()
    assert r.status_code == 503, r.text
    assert "ciphertext" not in r.text
    assert built == []
    assert db.dump() == before
    monkeypatch.setattr(deliver_module, "build_delivery", recording_build)
    assert (await kit.deliver(referral["id"])).status_code == 200  # the retry succeeds
    assert len(built) == 1


async def test_sweep_shreds_after_retention_and_keeps_metadata(
    kit: Kit, app: Any, db: TestDatabase
) -> None:
    referral = await kit.send()
    delivery = (await kit.deliver(referral["id"])).json()
    ciphertexts = [f["ciphertext"] for f in delivery["released"]]
    retention = timedelta(days=7)
    assert await run_sweep(app.state.sessionmaker, retention=retention, clock=kit.world.clock) == []
    kit.world.clock.advance(retention.total_seconds() - 1)
    assert await run_sweep(app.state.sessionmaker, retention=retention, clock=kit.world.clock) == []
    kit.world.clock.advance(1)
    shredded = await run_sweep(app.state.sessionmaker, retention=retention, clock=kit.world.clock)
    assert [str(i) for i in shredded] == [referral["id"]]
    assert await secret_bytes(app, referral["id"]) == [(n, False) for n in sorted(PLANTED)]
    state = (
        await kit.client.get(f"/v1/referrals/{referral['id']}", headers=kit.staff("vsp"))
    ).json()
    assert state["shredded_at"] is not None
    assert state["status"] == "delivered"
    again = (await kit.deliver(referral["id"])).json()
    assert again["released"] == []
    assert {p for w in again["withheld"] for p in w["policies"]} == {"crypto-shredded"}
    if db.engine == "sqlite":
        raw = db.raw_bytes()
        for text in ciphertexts:
            assert base64.b64decode(text) not in raw  # secure_delete + WAL checkpoint
    assert await run_sweep(app.state.sessionmaker, retention=retention, clock=kit.world.clock) == []


@pytest.mark.race
async def test_D03_revocation_and_delivery_are_ordered_in_the_log(
    kit: Kit, app: Any, db: TestDatabase
) -> None:
    """Deliveries and a revocation race; in the log, no disclosure under the consent
    follows its revocation entry, and every delivery after it withholds."""
    referrals = [(await kit.send({"phone": f"+1-555-02{i:02d}"}))["id"] for i in range(6)]

    async def deliver(rid: str) -> httpx.Response:
        return await kit.deliver(rid)

    async def revoke() -> httpx.Response:
        await asyncio.sleep(0)
        return await kit.client.post(
            f"/v1/consents/{kit.consent['id']}/revoke",
            json={"reason": "r"},
            headers=kit.staff("vsp"),
        )

    results = await asyncio.gather(*(deliver(r) for r in referrals), revoke())
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    async with app.state.sessionmaker() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    revoked_at = next(e.seq for e in entries if e.action == "consent.revoked")
    for e in entries:
        if e.action == "disclosure" and e.seq > revoked_at:
            pytest.fail(f"disclosure {e.seq} follows the revocation {revoked_at}")


async def test_F08_a_delivery_failing_after_its_append_consumes_no_sequence_number(
    kit: Kit, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fault strikes after the audit append, in the commit: the whole transaction
    rolls back, the number the append took is not consumed, and the next entry is
    the previous one plus one (no database sequence that could skip). On PostgreSQL
    the append runs inside the COMMIT (migration 0110) and a second deferred trigger,
    which fires after it, fails; on SQLite the append runs at once and the commit
    itself fails."""
    from service.disclosures import release as deliver_module

    referral = await kit.send()
    first = (await kit.deliver(referral["id"])).json()["disclosure_seq"]
    staged: list[Any] = []
    original_stage = deliver_module.stage

    async def recording_stage(*args: Any, **kwargs: Any) -> Any:
        entry = await original_stage(*args, **kwargs)
        staged.append(entry)
        return entry

    monkeypatch.setattr(deliver_module, "stage", recording_stage)
    if db.engine == "postgresql":
        await _pg_execute(
            db,
            "CREATE FUNCTION f08_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'injected fault after the append'; END $$",
            # Deferred triggers on one event fire in name order: after the append's.
            "CREATE CONSTRAINT TRIGGER zz_f08_fail AFTER INSERT ON audit_pending "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION f08_fail()",
        )
    else:
        monkeypatch.setattr(AsyncSession, "commit", _failing_commit)
    before = db.dump()
    r = await kit.deliver(referral["id"])
    monkeypatch.undo()
    if db.engine == "postgresql":
        await _pg_execute(db, "DROP TRIGGER zz_f08_fail ON audit_pending")
    assert r.status_code == 503, r.text
    assert "ciphertext" not in r.text
    # The append ran and took the next number (PostgreSQL: its NOTICE came first).
    assert [e.seq for e in staged] == [first + 1]
    assert db.dump() == before
    again = (await kit.deliver(referral["id"])).json()["disclosure_seq"]
    assert again == first + 1


async def test_a_delivery_waits_for_the_append_queue_only_in_its_commit(
    kit: Kit, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL (migration 0110): while another transaction holds the append queue,
    a delivery decides, stages its entry and reaches its COMMIT, and only there waits
    for the queue; once the queue is free it commits with the next number. The head
    is never held across this process's round trips."""
    if db.engine != "postgresql":
        pytest.skip("SQLite has one writer (BEGIN IMMEDIATE): no append queue")
    from service.disclosures import release as deliver_module

    referral = await kit.send()
    first = (await kit.deliver(referral["id"])).json()["disclosure_seq"]
    steps: list[str] = []
    original_stage, original_commit = deliver_module.stage, AsyncSession.commit

    async def recording_stage(*args: Any, **kwargs: Any) -> Any:
        entry = await original_stage(*args, **kwargs)
        steps.append("staged")
        return entry

    async def recording_commit(session: AsyncSession) -> None:
        steps.append("commit")
        await original_commit(session)
        steps.append("committed")

    monkeypatch.setattr(deliver_module, "stage", recording_stage)
    monkeypatch.setattr(AsyncSession, "commit", recording_commit)
    holder = await asyncpg.connect(
        make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock(('audit_head'::regclass)::oid::int, 1)")
        delivery = asyncio.create_task(kit.deliver(referral["id"]))
        waiters = 0
        for _ in range(500):
            waiters = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND classid = 'audit_head'::regclass::oid AND objid = 1"
            )
            if waiters:
                break
            await asyncio.sleep(0.01)
        assert waiters == 1, "the delivery never waited for the append queue"
        assert steps == ["staged", "commit"]  # it waits in its COMMIT, nowhere before
        await transaction.commit()
        r = await delivery
    finally:
        await holder.close()
    assert steps == ["staged", "commit", "committed"]
    assert r.status_code == 200, r.text
    assert r.json()["disclosure_seq"] == first + 1


async def test_D13_expiry_during_a_slow_delivery_decision_time_is_one_instant(
    kit: Kit, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock passes the consent's expiry between the decision and the commit. The
    entry records the one instant the inputs were read at; every released field was
    decided before expires_at, and the rows' release time is that same instant."""
    from service.disclosures import release as deliver_module

    referral = await kit.send()
    expires_at = datetime.fromisoformat(kit.consent["expires_at"])
    decided = kit.world.clock.now()
    original = deliver_module.decide_at_release

    async def slow_decision(*args: Any, **kwargs: Any) -> Any:
        decision = await original(*args, **kwargs)
        kit.world.clock.advance((expires_at - decided).total_seconds() + 3600)
        return decision

    monkeypatch.setattr(deliver_module, "decide_at_release", slow_decision)
    r = await kit.deliver(referral["id"])
    assert r.status_code == 200, r.text
    assert r.json()["released"]
    entry = await _entry(app, r.json()["disclosure_seq"])
    decided_at = datetime.fromisoformat(entry["details"]["decided_at"])
    assert decided_at == decided
    assert decided_at < expires_at
    assert datetime.fromisoformat(entry["at"].replace("Z", "+00:00")) > expires_at
    async with app.state.sessionmaker() as session:
        rows = await session.scalars(
            select(ReferralField).where(ReferralField.referral_id == uuid.UUID(referral["id"]))
        )
        assert {row.released_at for row in rows.all()} == {decided}
    # The next delivery decides after the expiry: nothing is released.
    monkeypatch.undo()
    later = (await kit.deliver(referral["id"])).json()
    assert later["released"] == []


async def test_deliveries_of_one_referral_decide_side_by_side(
    kit: Kit, app: Any, db: TestDatabase
) -> None:
    """PostgreSQL: a delivery holds the policy lock shared and no row lock on the
    referral, so a second delivery of the same referral reads and decides while the
    first is still open (they meet only at the append); a transition, which holds
    the policy lock exclusively, waits for both."""
    if db.engine != "postgresql":
        pytest.skip("SQLite has one writer (BEGIN IMMEDIATE): deliveries never overlap")
    from sqlalchemy import text

    from service.audit.ordering import lock_head
    from service.referrals.deliver import read_for_delivery

    referral = await kit.send()
    shelter = Principal(
        subject="bob",
        org_id=kit.world.orgs["shelter"],
        sector=Sector.shelter,
        roles=frozenset({Role.caseworker}),
    )
    referral_id = uuid.UUID(referral["id"])
    factory = app.state.sessionmaker
    async with factory() as first, factory() as second, factory() as transition:
        row = await read_for_delivery(first, principal=shelter, referral_id=referral_id)
        await second.execute(text("SET LOCAL lock_timeout = '200ms'"))
        again = await read_for_delivery(second, principal=shelter, referral_id=referral_id)
        assert again.referral.id == row.referral.id == referral_id
        assert [f.name for f in again.fields] == [f.name for f in row.fields]
        await transition.execute(text("SET LOCAL lock_timeout = '200ms'"))
        with pytest.raises(DBAPIError, match="lock timeout"):
            await lock_head(transition)
        await transition.rollback()
        await first.rollback()
        await second.rollback()


async def test_a_consent_amended_after_sending_is_read_as_superseded_at_delivery(
    kit: Kit,
) -> None:
    """The delivery reads its consent in the same statement as the referral
    (service/referrals/deliver.py): the grant's latest version, so a version
    superseded since sending allows nothing, as `consent_in_force` decides."""
    referral = await kit.send()
    amended = await kit.client.post(
        f"/v1/subjects/{kit.subject}/consents",
        json=grant_body(kit.world, categories=CATEGORIES, supersedes=kit.consent["id"]),
        headers=kit.staff("vsp"),
    )
    assert amended.status_code == 201, amended.text
    r = await kit.deliver(referral["id"])
    assert r.status_code == 200, r.text
    assert r.json()["released"] == []
    assert {w["name"] for w in r.json()["withheld"]} == set(PLANTED)


async def test_a_minors_referral_is_withheld_once_the_guardians_grant_is_revoked(
    kit: Kit,
) -> None:
    """A minor's own grant counts only with a live parent-or-guardian grant, and the
    delivery's one-statement read must carry the subject's minority for that rule
    (without it the minor's grant would count alone)."""
    kit.subject, kit.consent = await new_consent(
        kit.client,
        kit.world,
        await new_subject(kit.client, kit.world, minor=True),
        categories=CATEGORIES,
    )
    _, guardian = await new_consent(
        kit.client, kit.world, kit.subject, categories=CATEGORIES,
        given_by="parent_or_guardian", giver_ref="cd" * 32,
    )  # fmt: skip
    referral = await kit.send()
    first = await kit.deliver(referral["id"])
    assert first.status_code == 200, first.text
    assert first.json()["released"]
    revoked = await kit.client.post(
        f"/v1/consents/{guardian['id']}/revoke",
        json={"reason": "withdrawn"},
        headers=kit.staff("vsp"),
    )
    assert revoked.status_code == 200, revoked.text
    again = await kit.deliver(referral["id"])
    assert again.status_code == 200, again.text
    assert again.json()["released"] == []
