"""The event feed and webhook endpoint methods of both clients, against the real app
(both engines); and their retry rules against a scripted transport."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import httpx
import pytest
from accord_client.api import AccordClient, AsyncAccordClient
from accord_client.api_models import (
    CreatedWebhook,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    UnprocessableError,
)
from accord_client.keys import generate_organization_keys
from accord_client.webhooks import verify_webhook

from service.auth.principals import Role
from service.clock import FrozenClock
from service.events import signing
from tests.client.conftest import BASE_URL, NO_WAIT, SyncASGIBridge, async_client, staff_token
from tests.support.world import World

# A public address as a literal, so registering it needs no DNS (nothing is sent:
# the tests' app runs no dispatcher).
URL = "https://93.184.215.14/hooks/accord"


async def rotate_keys(app: Any, world: World, org: str = "vsp", times: int = 2) -> None:
    """Each key registration emits `keys.rotated` to every active organization."""
    async with async_client(app, world, org, Role.org_admin) as admin:
        for _ in range(times):
            keys = generate_organization_keys(str(world.orgs[org]))
            await admin.register_keys(world.orgs[org], keys)


# --- the feed ----------------------------------------------------------------------------


async def test_the_feed_pages_by_sequence_and_iterates_until_caught_up(
    app: Any, api: AsyncAccordClient, world: World
) -> None:
    before = await api.events()
    await rotate_keys(app, world)
    everything = await api.events(after=before.next_after, limit=100)
    rotated = [e for e in everything.items if e["type"] == "keys.rotated"]
    assert len(rotated) == 2
    assert all(e["object_id"] == str(world.orgs["vsp"]) for e in rotated)
    assert all(e["data"]["org_id"] == str(world.orgs["vsp"]) for e in rotated)
    seqs = [e["seq"] for e in everything.items]
    assert seqs == sorted(seqs)
    assert seqs[0] == before.next_after + 1
    assert everything.next_after == seqs[-1]

    one = await api.events(after=before.next_after, limit=1)
    assert one.items == everything.items[:1]
    assert one.next_after == everything.items[0]["seq"]
    walked = [e async for e in api.iter_events(after=before.next_after, page_size=1)]
    assert walked == everything.items
    assert [e async for e in api.iter_events()] == before.items + everything.items

    # Caught up: nothing new, and the cursor stays where it was.
    caught_up = await api.events(after=everything.next_after)
    assert caught_up.items == []
    assert caught_up.next_after == everything.next_after
    # Reading changed nothing.
    assert (await api.events(after=before.next_after, limit=100)) == everything


async def test_the_feed_refuses_a_negative_cursor_and_a_page_too_large(
    api: AsyncAccordClient,
) -> None:
    with pytest.raises(ValueError, match="after"):
        await api.events(after=-1)
    with pytest.raises(UnprocessableError) as caught:
        await api.events(limit=1000)
    assert [e.path for e in caught.value.problem.errors] == ["/limit"]


async def test_the_sync_client_reads_the_same_feed(
    app: Any, world: World, bridge: SyncASGIBridge, api: AsyncAccordClient
) -> None:
    await rotate_keys(app, world, "shelter", times=3)
    expected = (await api.events(limit=100)).items

    def read() -> tuple[list[Any], Any]:
        token = staff_token(world)
        with AccordClient(
            base_url=BASE_URL, token=token, transport=bridge, retry=NO_WAIT
        ) as client:
            return list(client.iter_events(page_size=2)), client.events(after=0, limit=100)

    walked, page = await asyncio.to_thread(read)
    assert walked == expected == page.items
    assert sum(e["type"] == "keys.rotated" for e in walked) == 3


# --- webhook endpoints -------------------------------------------------------------------


async def test_an_admin_manages_an_endpoint_through_the_async_client(
    app: Any, world: World
) -> None:
    vsp = world.orgs["vsp"]
    async with async_client(app, world, "vsp", Role.org_admin) as admin:
        created = await admin.create_webhook(
            vsp, url=URL, event_types=["referral.sent", "keys.rotated"]
        )
        assert isinstance(created, CreatedWebhook)
        assert created.secret.startswith("whsec_")
        assert len(base64.b64decode(created.secret[6:])) == 32
        assert created.secret not in repr(created)
        assert "secret" not in created.endpoint
        endpoint = created.endpoint
        assert endpoint["url"] == URL
        assert endpoint["event_types"] == ["referral.sent", "keys.rotated"]
        assert endpoint["paused"] is False
        hook = endpoint["id"]

        assert await admin.get_webhook(vsp, hook) == endpoint
        second = await admin.create_webhook(vsp, url=URL + "/2", event_types=["referral.sent"])
        page = await admin.list_webhooks(vsp, limit=1)
        assert len(page.items) == 1
        assert page.next_cursor is not None
        listed = [e["id"] async for e in admin.iter_webhooks(vsp, page_size=1)]
        assert sorted(listed) == sorted([hook, second.endpoint["id"]])

        paused = await admin.update_webhook(vsp, hook, paused=True)
        assert paused["paused"] is True
        assert paused["url"] == URL
        changed = await admin.update_webhook(vsp, hook, event_types=["consent.withdrawn"])
        assert changed["event_types"] == ["consent.withdrawn"]
        assert changed["paused"] is True
        resumed = await admin.update_webhook(vsp, hook, paused=False)
        assert resumed["paused"] is False
        with pytest.raises(ValueError, match="at least one"):
            await admin.update_webhook(vsp, hook)

        tested = await admin.test_webhook(vsp, hook)
        assert tested["event_type"] == "webhook.test"
        assert tested["status"] == "pending"
        deliveries = await admin.webhook_deliveries(vsp, hook)
        assert [d["id"] for d in deliveries.items] == [tested["id"]]
        assert deliveries.next_before is None
        assert (await admin.webhook_deliveries(vsp, hook, status="succeeded")).items == []
        again = await admin.redeliver_webhook(vsp, hook, tested["id"])
        assert again["id"] == tested["id"]
        assert again["event_id"] == tested["event_id"]  # the same webhook-id
        await admin.test_webhook(vsp, hook)
        walked = [d["id"] async for d in admin.iter_webhook_deliveries(vsp, hook, page_size=1)]
        assert len(walked) == 2
        assert walked[1] == tested["id"]  # newest event first
        # The test event is in the organization's feed too.
        feed = [e async for e in admin.iter_events()]
        assert [e["id"] for e in feed if e["type"] == "webhook.test"] == [
            tested["event_id"],
            (await admin.webhook_deliveries(vsp, hook)).items[0]["event_id"],
        ]

        rotated = await admin.rotate_webhook_secret(vsp, hook)
        assert rotated.secret.startswith("whsec_")
        assert rotated.secret != created.secret
        assert rotated.endpoint["id"] == hook
        assert rotated.endpoint["previous_secret_until"] is not None

        assert await admin.delete_webhook(vsp, hook) is None
        with pytest.raises(NotFoundError):
            await admin.get_webhook(vsp, hook)


async def test_only_the_organizations_admin_reaches_its_endpoints(app: Any, world: World) -> None:
    vsp = world.orgs["vsp"]
    async with async_client(app, world, "vsp", Role.org_admin) as admin:
        hook = (await admin.create_webhook(vsp, url=URL, event_types=["referral.sent"])).endpoint
    async with async_client(app, world, "vsp", Role.caseworker) as caseworker:
        with pytest.raises(PermissionDeniedError):
            await caseworker.get_webhook(vsp, hook["id"])
    async with async_client(app, world, "shelter", Role.org_admin) as other:
        with pytest.raises(NotFoundError):
            await other.get_webhook(vsp, hook["id"])
        with pytest.raises(NotFoundError):
            await other.rotate_webhook_secret(vsp, hook["id"])


async def test_a_link_local_url_is_refused_with_a_422(app: Any, world: World) -> None:
    vsp = world.orgs["vsp"]
    async with async_client(app, world, "vsp", Role.org_admin) as admin:
        with pytest.raises(UnprocessableError):
            await admin.create_webhook(
                vsp, url="https://169.254.169.254/latest", event_types=["referral.sent"]
            )


async def test_the_published_signing_key_verifies_what_the_service_signs(
    app: Any, api: AsyncAccordClient, clock: FrozenClock
) -> None:
    public_key = await api.webhook_signing_key()
    assert public_key.startswith("whpk_")
    body, msg_id = b'{"type":"keys.rotated"}', "2b4d1c9e-5a6f-4e1b-8c3d-7f9a0b1c2d3e"
    now = clock.now()
    ts = int(now.timestamp())
    headers = signing.headers(
        msg_id, ts, body, secrets=[os.urandom(32)], signer=app.state.keyring.webhook
    )
    assert verify_webhook(body, headers, public_key=public_key, now=now) == msg_id


async def test_the_sync_client_manages_an_endpoint_too(
    world: World, bridge: SyncASGIBridge
) -> None:
    vsp = world.orgs["vsp"]

    def scenario() -> dict[str, Any]:
        token = staff_token(world, "vsp", Role.org_admin)
        with AccordClient(base_url=BASE_URL, token=token, transport=bridge, retry=NO_WAIT) as admin:
            created = admin.create_webhook(vsp, url=URL, event_types=["keys.rotated"])
            hook = created.endpoint["id"]
            tested = admin.test_webhook(vsp, hook)
            return {
                "created": created,
                "got": admin.get_webhook(vsp, hook),
                "listed": [e["id"] for e in admin.iter_webhooks(vsp)],
                "updated": admin.update_webhook(vsp, hook, url=URL + "/v2"),
                "deliveries": list(admin.iter_webhook_deliveries(vsp, hook)),
                "redelivered": admin.redeliver_webhook(vsp, hook, tested["id"]),
                "rotated": admin.rotate_webhook_secret(vsp, hook),
                "key": admin.webhook_signing_key(),
                "deleted": admin.delete_webhook(vsp, hook),
            }

    out = await asyncio.to_thread(scenario)
    hook = out["created"].endpoint["id"]
    assert out["got"] == out["created"].endpoint
    assert out["listed"] == [hook]
    assert out["updated"]["url"] == URL + "/v2"
    assert [d["event_type"] for d in out["deliveries"]] == ["webhook.test"]
    assert out["redelivered"]["id"] == out["deliveries"][0]["id"]
    assert out["rotated"].secret != out["created"].secret
    assert out["key"].startswith("whpk_")
    assert out["deleted"] is None


# --- retries: a resend must never rotate twice or fire twice ------------------------------


class Scripted(httpx.MockTransport):
    """Answers 503 first, then 200 with a given body; records each request."""

    def __init__(self, body: Any) -> None:
        self.requests: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            if len(self.requests) == 1:
                return httpx.Response(503, json={"title": "busy", "status": 503})
            return httpx.Response(200, json=body)

        super().__init__(handle)


ENDPOINT = {"id": "e", "org_id": "o", "url": URL, "event_types": [], "paused": False}


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.rotate_webhook_secret("o", "e"), {**ENDPOINT, "secret": "whsec_AAAA"}),
        (lambda c: c.create_webhook("o", url=URL, event_types=["x"]), {**ENDPOINT, "secret": "s"}),
        (lambda c: c.test_webhook("o", "e"), {"id": "d"}),
        (lambda c: c.redeliver_webhook("o", "e", "d"), {"id": "d"}),
        (lambda c: c.update_webhook("o", "e", paused=True), ENDPOINT),
    ],
)
def test_posts_and_patches_are_not_retried(call: Any, body: Any) -> None:
    transport = Scripted(body)
    client = AccordClient(base_url=BASE_URL, token="t", transport=transport, retry=NO_WAIT)
    with client, pytest.raises(ServiceUnavailableError):
        call(client)
    assert len(transport.requests) == 1


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.events(after=5), {"items": [], "next_after": 5}),
        (lambda c: c.get_webhook("o", "e"), ENDPOINT),
        (lambda c: c.webhook_signing_key(), {"public_key": "whpk_x"}),
    ],
)
async def test_reads_are_retried_by_both_twins(call: Any, body: Any) -> None:
    transport = Scripted(body)
    with AccordClient(base_url=BASE_URL, token="t", transport=transport, retry=NO_WAIT) as client:
        sync_result = call(client)
    assert len(transport.requests) == 2
    async_transport = Scripted(body)
    async with AsyncAccordClient(
        base_url=BASE_URL, token="t", transport=async_transport, retry=NO_WAIT
    ) as aclient:
        assert await call(aclient) == sync_result
    assert len(async_transport.requests) == 2
    assert [r.url for r in async_transport.requests] == [r.url for r in transport.requests]


def test_an_answer_without_the_secret_is_an_error_not_a_silent_none() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(201, json=ENDPOINT))
    client = AccordClient(base_url=BASE_URL, token="t", transport=transport)
    with client, pytest.raises(ValueError, match="secret"):
        client.create_webhook("o", url=URL, event_types=["x"])
