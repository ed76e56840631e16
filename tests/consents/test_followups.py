"""What follows a withdrawal or an agreement change: earlier recipients are queued a
notice (outbox), and grants that relied on a dropped purpose are flagged for review.
Revocation versus decision is in test_races.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.consents.models import ConsentNotification
from service.sectors import Sector
from tests.support.factories import new_consent
from tests.support.world import FLOW_CATEGORIES, World


async def _grant(client: httpx.AsyncClient, world: World) -> tuple[str, str]:
    subject, consent = await new_consent(client, world, categories=["contact"])
    return subject, consent["id"]


async def test_earlier_recipients_are_notified_of_a_withdrawal_once(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    subject, consent = await _grant(client, world)
    sender = Principal("alice", world.orgs["vsp"], Sector.victim_services, frozenset())
    async with app.state.sessionmaker() as session:
        await append(
            session,
            AuditEvent(
                "disclosure",
                sender,
                subject_ref=subject,
                counterpart_org_id=world.orgs["shelter"],
                details={"consent_id": consent, "categories": ["contact"]},
            ),
            clock=app.state.clock,
        )
        await session.commit()
    url = f"/v1/consents/{consent}/revoke"
    headers = world.headers("vsp", Role.caseworker)
    for _ in range(2):
        assert (await client.post(url, json={"reason": "x"}, headers=headers)).status_code == 200
    async with app.state.sessionmaker() as session:
        notices = (await session.scalars(select(ConsentNotification))).all()
    assert [(n.recipient_org_id, n.event) for n in notices] == [
        (world.orgs["shelter"], "consent.revoked")
    ]


async def test_a_narrowed_agreement_flags_the_grants_that_relied_on_it(
    client: httpx.AsyncClient, world: World
) -> None:
    _, consent = await _grant(client, world)
    staff = world.headers("vsp", Role.supervisor)
    assert (await client.get("/v1/consent-reviews", headers=staff)).json()["items"] == []
    admin = world.headers("platform", Role.platform_admin)
    url = f"/v1/collaborations/{world.collaboration_id}/agreement"
    agreement = {
        "flows": [
            {
                "from_sector": "victim_services",
                "to_sector": "shelter",
                "purposes": ["services_referral", "case_coordination"],
                "categories": FLOW_CATEGORIES,
            }
        ],
        "effective_from": (world.clock.now() - timedelta(days=1)).isoformat(),
        "document_sha256": "bb" * 32,
    }
    widened = await client.put(url, json=agreement, headers=admin)
    assert widened.status_code == 200
    assert (await client.get("/v1/consent-reviews", headers=staff)).json()["items"] == []
    agreement["flows"][0]["purposes"] = ["case_coordination"]
    narrowed = await client.put(url, json=agreement, headers=admin)
    assert narrowed.status_code == 200
    flagged = (await client.get("/v1/consent-reviews", headers=staff)).json()["items"]
    assert [c["id"] for c in flagged] == [consent]
    other = world.headers("shelter", Role.caseworker)
    assert (await client.get("/v1/consent-reviews", headers=other)).json()["items"] == []
