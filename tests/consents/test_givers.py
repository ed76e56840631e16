"""C15: a person recorded as the alleged abuser can never give consent; a minor's grant
is paired with the parent-or-guardian grant that matches it best (both engines)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.collaborations.service import shared_agreement_flows
from service.consents.in_force import consent_in_force
from service.consents.models import AllegedAbuser
from service.policy.inputs import Actor, ConsentInForce, DecisionRequest, FieldRef, OrgRef
from service.sectors import Sector
from tests.support.databases import TestDatabase
from tests.support.factories import grant_body, new_subject
from tests.support.world import World

ABUSER = "ab" * 32
GUARDIAN = "cd" * 32


async def _record_abuser(
    client: httpx.AsyncClient, world: World, subject: str, ref: str = ABUSER
) -> httpx.Response:
    return await client.post(
        f"/v1/subjects/{subject}/alleged-abusers",
        json={"person_ref": ref},
        headers=world.headers("vsp", Role.supervisor),
    )


async def _create(
    client: httpx.AsyncClient, world: World, subject: str, **change: Any
) -> httpx.Response:
    return await client.post(
        f"/v1/subjects/{subject}/consents",
        json=grant_body(world, **change),
        headers=world.headers("vsp", Role.caseworker),
    )


async def _allows_contact(app: Any, world: World, consent: ConsentInForce | None) -> bool:
    async with app.state.sessionmaker() as session:
        flows = await shared_agreement_flows(session, world.orgs["vsp"], world.orgs["shelter"])
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
        agreements=flows,
    )
    return bool(app.state.policy_engine.decide(request).all_allowed)


async def test_C15_an_alleged_abuser_cannot_give_consent(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject = await new_subject(client, world, minor=True)
    assert (await _record_abuser(client, world, subject)).status_code == 201
    before = db.dump()
    refused = await _create(client, world, subject, given_by="parent_or_guardian", giver_ref=ABUSER)
    assert refused.status_code == 422, refused.text
    assert [e["path"] for e in refused.json()["errors"]] == ["/giver_ref"]
    assert ABUSER not in refused.text
    assert db.dump() == before
    accepted = await _create(
        client, world, subject, given_by="parent_or_guardian", giver_ref=GUARDIAN
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["giver_ref"] == GUARDIAN


async def test_C15_the_abuser_rule_is_per_subject(client: httpx.AsyncClient, world: World) -> None:
    marked = await new_subject(client, world, minor=True)
    other = await new_subject(client, world, minor=True)
    await _record_abuser(client, world, marked)
    r = await _create(client, world, other, given_by="parent_or_guardian", giver_ref=ABUSER)
    assert r.status_code == 201, r.text


async def test_C15_a_grant_stops_counting_when_its_giver_is_recorded_as_the_abuser(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject = await new_subject(client, world, minor=True)
    own = (await _create(client, world, subject, categories=["contact"])).json()
    guardian = (
        await _create(
            client,
            world,
            subject,
            given_by="parent_or_guardian",
            giver_ref=GUARDIAN,
            categories=["contact"],
        )
    ).json()
    headers = world.headers("vsp", Role.caseworker)
    async with app.state.sessionmaker() as session:
        paired = await consent_in_force(session, uuid.UUID(own["id"]), world.clock.now())
        by_guardian = await consent_in_force(session, uuid.UUID(guardian["id"]), world.clock.now())
    assert paired is not None
    assert paired.guardian is not None
    assert await _allows_contact(app, world, paired)
    assert await _allows_contact(app, world, by_guardian)

    assert (await _record_abuser(client, world, subject, GUARDIAN)).status_code == 201
    got = await client.get(f"/v1/consents/{guardian['id']}", headers=headers)
    assert got.json()["live"] is False
    async with app.state.sessionmaker() as session:
        barred = await consent_in_force(session, uuid.UUID(guardian["id"]), world.clock.now())
        unpaired = await consent_in_force(session, uuid.UUID(own["id"]), world.clock.now())
    assert barred is not None
    assert barred.given_by_named_abuser
    assert not await _allows_contact(app, world, barred)
    assert unpaired is not None
    assert unpaired.guardian is None
    assert not await _allows_contact(app, world, unpaired)


async def test_recording_an_abuser_is_idempotent_and_the_reference_stays_out_of_the_log(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject = await new_subject(client, world)
    first = await _record_abuser(client, world, subject)
    again = await _record_abuser(client, world, subject)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(AllegedAbuser))).all()
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "subject.alleged_abuser_recorded")
            )
        ).all()
    assert len(rows) == 1
    assert len(entries) == 1
    assert ABUSER not in entries[0].body


async def test_a_minors_grant_is_paired_with_the_guardian_grant_that_matches_it(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject = await new_subject(client, world, minor=True)
    own = (await _create(client, world, subject, categories=["contact"])).json()
    guardian = {"given_by": "parent_or_guardian", "giver_ref": GUARDIAN}
    # Recorded first and last: guardian grants that do not cover the minor's category.
    await _create(client, world, subject, categories=["needs"], **guardian)
    world.clock.advance(1)
    matching = (await _create(client, world, subject, categories=["contact"], **guardian)).json()
    world.clock.advance(1)
    await _create(client, world, subject, categories=["language"], **guardian)
    async with app.state.sessionmaker() as session:
        paired = await consent_in_force(session, uuid.UUID(own["id"]), world.clock.now())
    assert paired is not None
    assert paired.guardian is not None
    assert paired.guardian.categories == frozenset(matching["categories"])
    assert await _allows_contact(app, world, paired)


async def test_C_giver_and_abuser_records_are_immutable_in_the_database(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject = await new_subject(client, world, minor=True)
    created = await _create(
        client, world, subject, given_by="parent_or_guardian", giver_ref=GUARDIAN
    )
    assert created.status_code == 201
    await _record_abuser(client, world, subject)
    before = db.dump()
    for statement in (
        "UPDATE consent_givers SET giver_ref = 'x'",
        "DELETE FROM consent_givers",
        "UPDATE alleged_abusers SET person_ref = 'x'",
        "DELETE FROM alleged_abusers",
    ):
        async with app.state.sessionmaker() as session:
            with pytest.raises(DBAPIError, match="immutable"):
                await session.execute(text(statement))
            await session.rollback()
    assert db.dump() == before
