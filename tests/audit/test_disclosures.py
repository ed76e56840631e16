"""The survivor's accounting of disclosures, read from the audit log: the owner's
case staff see who received which categories, when and why; nobody else does."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.sectors import Sector
from tests.support.databases import TestDatabase
from tests.support.factories import new_subject
from tests.support.world import World


async def _subject(client: httpx.AsyncClient, world: World) -> str:
    return await new_subject(client, world)


async def _record_disclosure(app: Any, world: World, subject: str) -> None:
    """What the release code (issue 6) writes with every release."""
    sender = Principal(
        subject="alice",
        org_id=world.orgs["vsp"],
        sector=Sector.victim_services,
        roles=frozenset({Role.caseworker}),
    )
    async with app.state.sessionmaker() as session:
        await append(
            session,
            AuditEvent(
                "disclosure",
                sender,
                subject_ref=subject,
                counterpart_org_id=world.orgs["shelter"],
                details={
                    "categories": ["contact", "needs", "contact"],
                    "fields": ["phone", "services"],
                    "purpose": "services_referral",
                    "legal_basis": "consent",
                },
            ),
            clock=app.state.clock,
        )
        await session.commit()


async def test_the_owner_sees_every_disclosure_in_plain_terms(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject = await _subject(client, world)
    url = f"/v1/subjects/{subject}/disclosures"
    empty = await client.get(url, headers=world.headers("vsp", Role.supervisor))
    assert empty.status_code == 200
    assert empty.json()["items"] == []
    await _record_disclosure(app, world, subject)
    body = (await client.get(url, headers=world.headers("vsp", Role.caseworker))).json()
    (item,) = body["items"]
    assert item["recipient_org_id"] == str(world.orgs["shelter"])
    assert item["recipient_name"] == "shelter org"
    assert item["categories"] == ["contact", "needs"]
    assert (item["purpose"], item["legal_basis"]) == ("services_referral", "consent")


@pytest.mark.parametrize(
    ("org", "role", "status"),
    [
        ("shelter", Role.caseworker, 404),  # the recipient is not the owner
        ("police", Role.investigator, 403),
        ("vsp", Role.auditor, 403),
        ("vsp", Role.org_admin, 403),
    ],
)
async def test_B_nobody_else_reads_the_accounting(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    org: str,
    role: Role,
    status: int,
) -> None:
    subject = await _subject(client, world)
    await _record_disclosure(app, world, subject)
    before = db.dump()
    url = f"/v1/subjects/{subject}/disclosures"
    r = await client.get(url, headers=world.headers(org, role))
    assert r.status_code == status
    assert "shelter" not in r.text
    assert (await client.get(url)).status_code == 401
    assert db.dump() == before


async def test_an_unknown_subject_is_the_same_404(client: httpx.AsyncClient, world: World) -> None:
    subject = await _subject(client, world)
    headers = world.headers("shelter", Role.caseworker)
    other = await client.get(f"/v1/subjects/{subject}/disclosures", headers=headers)
    missing = await client.get(
        "/v1/subjects/00000000-0000-4000-8000-000000000000/disclosures", headers=headers
    )
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
