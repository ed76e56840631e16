"""Webhook endpoints and deliveries with known ids, for tests that need them to exist
before the first request (the authorization matrix names them in its paths)."""

from __future__ import annotations

import uuid

from service import crypto
from service.clock import Clock
from service.events import signing
from service.events.catalog import EventType
from service.events.models import Event, WebhookDelivery, WebhookEndpoint
from service.events.outbox import emit
from tests.support.world import World

_NS = uuid.UUID("6f1d5c2e-4b1a-4c7e-9a51-3f0c2d7e8b90")
# A public address given as a literal, so registering it needs no DNS.
PUBLIC_URL = "https://93.184.215.14/hooks/accord"


def endpoint_id(world: World, org: str) -> uuid.UUID:
    return uuid.uuid5(_NS, f"endpoint:{world.orgs[org]}")


def delivery_id(world: World, org: str) -> uuid.UUID:
    return uuid.uuid5(_NS, f"delivery:{world.orgs[org]}")


async def seed(world: World) -> None:
    """One endpoint per organization of the world, each with one failed delivery of a
    `referral.sent` event (ids: `endpoint_id`, `delivery_id`)."""
    app = world.app
    key = app.state.keyring.webhook_secrets_key
    clock: Clock = world.clock
    now = clock.now()
    async with app.state.sessionmaker() as session:
        for org, org_id in world.orgs.items():
            session.add(
                WebhookEndpoint(
                    id=endpoint_id(world, org),
                    org_id=org_id,
                    url=PUBLIC_URL,
                    event_types=[EventType.keys_rotated.value],
                    paused=False,
                    secret_sealed=crypto.seal_secret(key, signing.new_secret()),
                    created_at=now,
                    created_by="test-seed",
                )
            )
        await session.flush()
        for org, org_id in world.orgs.items():
            (event_id,) = await emit(
                session,
                kind=EventType.referral_sent,
                to=[org_id],
                object_type="referral",
                object_id=uuid.uuid4(),
                data={"status": "sent"},
                at=now,
            )
            event = await session.get_one(Event, event_id)
            session.add(
                WebhookDelivery(
                    id=delivery_id(world, org),
                    event_id=event_id,
                    event_seq=event.seq,
                    endpoint_id=endpoint_id(world, org),
                    object_key=f"referral:{event_id}",
                    status="failed",
                    attempts=3,
                    next_attempt_at=now,
                    last_status_code=500,
                    created_at=now,
                )
            )
        await session.commit()
