"""SECURITY-TESTS H03: every-statement fault injection, on both engines; and a
connection the database ends in the middle of a delivery (H06's fault, in one
request).

For the deliver, revoke, consent-create, withdraw and sweep transactions, the
driver's OperationalError is raised at SQL statement n for n = 1, 2, ... until a
run sends fewer statements than n (that run had no fault, and must succeed).
Statements are counted both ways the service sends them: through SQLAlchemy and
on the driver (service/db/direct.py). For every n: a 503 problem (the sweep raises
OperationalError), and the database unchanged (O-unchanged)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from service.auth.principals import Role
from service.retention import run_sweep
from tests.referrals.support import Kit
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body
from tests.support.faults import StatementFaults, statement_faults

LIMIT = 80  # no transaction here sends nearly this many statements


@pytest.fixture
def faults(app: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with statement_faults(app.state.engine, monkeypatch) as injected:
        yield injected


async def _every_statement(
    faults: StatementFaults,
    db: TestDatabase,
    attempt: Callable[[], Awaitable[httpx.Response]],
    ok: int,
) -> tuple[int, int]:
    """Fault each statement in turn; (statements, of which on the driver) of the
    run without a fault, which must answer `ok`."""
    before = db.dump()
    for n in range(1, LIMIT):
        faults.arm(n)
        r = await attempt()
        if not faults.fired:
            assert r.status_code == ok, r.text
            return faults.count, faults.on_driver
        assert r.status_code == 503, (n, r.status_code, r.text)
        assert "Retry-After" in r.headers
        assert "ciphertext" not in r.text
        assert db.dump() == before, f"a fault at statement {n} left a change"
    pytest.fail(f"the transaction still faulted after {LIMIT} statements")


async def test_H03_first_delivery(kit: Kit, db: TestDatabase, faults: StatementFaults) -> None:
    referral = await kit.send()
    statements, on_driver = await _every_statement(
        faults, db, lambda: kit.deliver(referral["id"]), 200
    )
    # The principal's organization, the policy lock, the referral with its fields
    # and consent (one statement), the release marks, the state change and the
    # staged entry at least went through the driver (PostgreSQL appends it in the
    # COMMIT, migration 0110; SQLite at once: four more).
    assert on_driver >= 6, (statements, on_driver)


async def test_H03_withdraw(kit: Kit, db: TestDatabase, faults: StatementFaults) -> None:
    referral = await kit.send()
    statements, on_driver = await _every_statement(
        faults,
        db,
        lambda: kit.client.post(
            f"/v1/referrals/{referral['id']}/withdraw", headers=kit.staff("vsp")
        ),
        200,
    )
    assert statements >= 5, statements
    assert on_driver >= 2, on_driver


async def test_H03_consent_create(kit: Kit, db: TestDatabase, faults: StatementFaults) -> None:
    statements, on_driver = await _every_statement(
        faults,
        db,
        lambda: kit.client.post(
            f"/v1/subjects/{kit.subject}/consents",
            json=grant_body(kit.world),
            headers=kit.staff("vsp"),
        ),
        201,
    )
    assert statements >= 4, statements
    assert on_driver >= 2, on_driver


async def test_H03_revoke_shreds_or_changes_nothing(
    kit: Kit, db: TestDatabase, faults: StatementFaults
) -> None:
    await kit.send()  # never delivered: the revocation shreds it
    statements, on_driver = await _every_statement(
        faults,
        db,
        lambda: kit.client.post(
            f"/v1/consents/{kit.consent['id']}/revoke",
            json={"reason": "withdrawn"},
            headers=kit.world.headers("vsp", Role.caseworker),
        ),
        200,
    )
    assert statements >= 5, statements
    assert on_driver >= 2, on_driver


async def test_H03_sweep(kit: Kit, app: Any, db: TestDatabase, faults: StatementFaults) -> None:
    referral = await kit.send()
    assert (await kit.deliver(referral["id"])).status_code == 200
    retention = timedelta(days=7)
    kit.world.clock.advance(retention.total_seconds())
    before = db.dump()
    for n in range(1, LIMIT):
        faults.arm(n)
        try:
            shredded = await run_sweep(
                app.state.sessionmaker, retention=retention, clock=kit.world.clock
            )
        except OperationalError:
            assert faults.fired
            assert db.dump() == before, f"a fault at statement {n} left a change"
            continue
        assert not faults.fired
        assert [str(i) for i in shredded] == [referral["id"]]
        assert faults.count >= 4, faults.count
        assert faults.on_driver >= 2, faults.on_driver
        return
    pytest.fail(f"the sweep still faulted after {LIMIT} statements")


async def test_H06_connection_lost_mid_delivery(
    kit: Kit, app: Any, db: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database ends the delivery's connection between two statements run on
    the driver (after the referral and its fields are read, before the staged
    entry): 503 problem, nothing changed, and the next delivery succeeds on a fresh
    connection, without a restart. PostgreSQL only (a backend to terminate)."""
    if db.engine != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    from sqlalchemy import text

    from service.referrals import deliver as deliver_module

    referral = await kit.send()
    original = deliver_module.read_for_delivery

    async def read_then_lose_connection(session: Any, **kwargs: Any) -> Any:
        row = await original(session, **kwargs)
        raw = await (await session.connection()).get_raw_connection()
        pid = raw.driver_connection.get_server_pid()
        async with app.state.engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return row

    before = db.dump()
    monkeypatch.setattr(deliver_module, "read_for_delivery", read_then_lose_connection)
    r = await kit.deliver(referral["id"])
    monkeypatch.undo()
    assert r.status_code == 503, r.text
    assert "ciphertext" not in r.text
    assert db.dump() == before
    again = await kit.deliver(referral["id"])
    assert again.status_code == 200, again.text
