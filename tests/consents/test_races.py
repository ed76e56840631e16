"""Revocation versus decision with two concurrent sessions (PostgreSQL; on SQLite every
write transaction is BEGIN IMMEDIATE, so there is never a second writer to race).

- a revocation committed before a decision makes that decision deny: the decision
  reads the revocation, not a stale copy (issue 5);
- a revocation waits for a decision in flight, so its audit entry follows the
  disclosure's (O-order, SECURITY-TESTS D03);
- two revokes at once: one revocation, one audit entry, the same answer (D06).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from service.audit.log import AuditEvent, append
from service.audit.models import AuditEntry
from service.auth.principals import Principal, Role
from service.collaborations.service import shared_agreement_flows
from service.consents import service as consent_service
from service.consents.in_force import consent_in_force
from service.disclosures.decide import ReleaseInputs, decide_at_release
from service.policy.inputs import Actor, ConsentInForce, DecisionRequest, FieldRef, OrgRef
from service.sectors import Sector
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World

pytestmark = [pytest.mark.race, pytest.mark.pg_only]
SQLITE_REASON = "two concurrent write transactions need PostgreSQL (SQLite has one writer)"


def _require_pg(db: TestDatabase) -> None:
    if db.engine != "postgresql":
        pytest.skip(SQLITE_REASON)


def _caseworker(world: World) -> Principal:
    return Principal(
        subject="alice",
        org_id=world.orgs["vsp"],
        sector=Sector.victim_services,
        roles=frozenset({Role.caseworker}),
    )


async def _grant(client: httpx.AsyncClient, world: World) -> uuid.UUID:
    _, consent = await new_consent(client, world, categories=["contact"])
    return uuid.UUID(consent["id"])


async def _decide(app: Any, session: Any, world: World, consent: ConsentInForce | None) -> bool:
    """The engine's answer for one contact field from the VSP to the shelter."""
    request = DecisionRequest(
        actor=Actor(org_id=world.orgs["vsp"], roles=frozenset({"caseworker"})),
        sender=OrgRef(world.orgs["vsp"], Sector.victim_services),
        recipient=OrgRef(world.orgs["shelter"], Sector.shelter),
        subject_owner=world.orgs["vsp"],
        purpose="services_referral",
        legal_basis="consent",
        at=world.clock.now(),
        fields=(FieldRef("phone", "contact"),),
        consent=consent,
        agreements=await shared_agreement_flows(session, world.orgs["vsp"], world.orgs["shelter"]),
    )
    return bool(app.state.policy_engine.decide(request).all_allowed)


async def test_D_a_revocation_committed_before_a_decision_makes_it_deny(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    _require_pg(db)
    consent_id = await _grant(client, world)
    async with app.state.sessionmaker() as session:
        live = await consent_in_force(session, consent_id, world.clock.now())
        assert await _decide(app, session, world, live), "the grant allows before revocation"
    async with app.state.sessionmaker() as decider:
        # The deciding transaction is already open before the revocation commits.
        await decider.execute(text("SELECT 1"))
        revoked = await client.post(
            f"/v1/consents/{consent_id}/revoke",
            json={"reason": "withdrawn"},
            headers=world.headers("vsp", Role.caseworker),
        )
        assert revoked.status_code == 200
        after = await consent_in_force(decider, consent_id, world.clock.now())
        assert after is not None
        assert after.revoked_at is not None
        assert not await _decide(app, decider, world, after)
        await decider.rollback()


async def test_D03_a_revocation_waits_for_a_decision_in_flight(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    _require_pg(db)
    consent_id = await _grant(client, world)
    principal = _caseworker(world)
    async with app.state.sessionmaker() as decider:
        # The release path itself: the policy lock held shared, then the inputs read.
        decision = await decide_at_release(
            decider,
            app.state.policy_engine,
            ReleaseInputs(
                actor_org_id=world.orgs["vsp"],
                actor_roles=frozenset({"caseworker"}),
                sender_org_id=world.orgs["vsp"],
                recipient_org_id=world.orgs["shelter"],
                subject_owner=world.orgs["vsp"],
                purpose="services_referral",
                legal_basis="consent",
                consent_id=consent_id,
                fields=[FieldRef("phone", "contact")],
            ),
            clock=world.clock,
        )
        assert decision.all_allowed
        async with app.state.sessionmaker() as revoker:
            # While the decision holds its shared lock, the revocation cannot proceed.
            await revoker.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(DBAPIError, match="lock timeout"):
                await consent_service.revoke(
                    revoker,
                    principal=principal,
                    consent_id=consent_id,
                    reason="withdrawn",
                    clock=world.clock,
                )
            await revoker.rollback()
        await append(
            decider,
            AuditEvent(
                "disclosure",
                principal,
                counterpart_org_id=world.orgs["shelter"],
                details={"consent_id": str(consent_id), "categories": ["contact"]},
            ),
            clock=world.clock,
        )
        await decider.commit()
    async with app.state.sessionmaker() as revoker:
        await consent_service.revoke(
            revoker, principal=principal, consent_id=consent_id, reason="w", clock=world.clock
        )
        await revoker.commit()
    async with app.state.sessionmaker() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    seq = {e.action: e.seq for e in entries if e.action in ("disclosure", "consent.revoked")}
    assert seq["disclosure"] < seq["consent.revoked"]  # O-order(C)


async def _waiting_for_a_lock(app: Any) -> bool:
    async with app.state.engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


async def test_D06_two_revokes_at_once_make_one_revocation(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    _require_pg(db)
    consent_id = await _grant(client, world)
    principal = _caseworker(world)
    async with app.state.sessionmaker() as first:
        won = await consent_service.revoke(
            first, principal=principal, consent_id=consent_id, reason="a", clock=world.clock
        )

        async def second() -> Any:
            async with app.state.sessionmaker() as session:
                state = await consent_service.revoke(
                    session,
                    principal=principal,
                    consent_id=consent_id,
                    reason="b",
                    clock=world.clock,
                )
                await session.commit()
                return state

        task = asyncio.create_task(second())
        # Bounded wait (no sleep): each probe is a round trip that lets the task run.
        for _ in range(500):
            if await _waiting_for_a_lock(app):
                break
        assert not task.done(), "the second revoke must wait for the first"
        await first.commit()
        lost = await task
    assert lost.revocation is not None
    assert won.revocation is not None
    assert lost.revocation.revoked_at == won.revocation.revoked_at
    async with app.state.sessionmaker() as session:
        bodies = (
            await session.scalars(
                select(AuditEntry.body).where(AuditEntry.action == "consent.revoked")
            )
        ).all()
    assert [json.loads(b)["details"]["consent_id"] for b in bodies] == [str(consent_id)]
