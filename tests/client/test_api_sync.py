"""The sync client against the real app (both engines) through a sync transport
bridged to the app's event loop."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from accord_client.api import AccordClient
from accord_client.api_models import ConsentDraft, UnprocessableError

from tests.client.conftest import BASE_URL, NO_WAIT, SyncASGIBridge, staff_token
from tests.support.databases import TestDatabase
from tests.support.world import World


def _client(world: World, bridge: SyncASGIBridge) -> AccordClient:
    return AccordClient(
        base_url=BASE_URL, token=staff_token(world), transport=bridge, retry=NO_WAIT
    )


async def test_consent_lifecycle_and_pagination_through_the_sync_client(
    world: World, bridge: SyncASGIBridge
) -> None:
    draft = ConsentDraft(
        recipients=(str(world.orgs["shelter"]),),
        purposes=("services_referral",),
        categories=("contact",),
        expires_at=world.clock.now() + timedelta(days=30),
        method="verbal",
        witness_role="advocate",
        language="en",
    )

    def scenario() -> dict[str, Any]:
        with _client(world, bridge) as client:
            subject = client.create_subject()
            first = client.create_consent(subject["id"], draft)
            second = client.amend_consent(first["id"], draft, subject_id=subject["id"])
            revoked = client.revoke_consent(second["id"], reason="asked")
            listed = client.list_consents(subject["id"])
            orgs = [o["id"] for o in client.iter_organizations(page_size=3)]
            return {
                "ids": [first["id"], second["id"]],
                "revoked": revoked,
                "listed": listed,
                "orgs": orgs,
            }

    out = await asyncio.to_thread(scenario)
    first_id, second_id = out["ids"]
    assert [c["id"] for c in out["listed"]] == [second_id, first_id]
    assert out["revoked"]["live"] is False
    assert sorted(out["orgs"]) == sorted(str(o) for o in world.orgs.values())
    assert len(bridge.requests) > 5


async def test_sync_422_stores_nothing(
    world: World, bridge: SyncASGIBridge, db: TestDatabase
) -> None:
    def create_subject() -> str:
        with _client(world, bridge) as client:
            return client.create_subject()["id"]

    subject = await asyncio.to_thread(create_subject)
    before = db.dump()
    bad = ConsentDraft(
        recipients=(),
        purposes=("services_referral",),
        categories=("contact",),
        expires_at=world.clock.now() + timedelta(days=30),
        method="written",
        language="en",
    )

    def create_bad() -> None:
        with _client(world, bridge) as client:
            client.create_consent(subject, bad)

    with pytest.raises(UnprocessableError) as caught:
        await asyncio.to_thread(create_bad)
    assert "/recipients" in {e.path for e in caught.value.problem.errors}
    assert db.dump() == before
