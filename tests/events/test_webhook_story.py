"""A scripted story reaches real loopback receivers through the dispatcher that runs
inside the app (as in `accord serve`), on both engines: every organization's
receiver gets exactly its own feed, one object's events in order, each request
signed so that the independent `standardwebhooks` package verifies `v1` with the
secret shown at registration and a verifier written here from the specification's
text verifies `v1a` with the key published at GET /v1/webhooks/signing-key."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from service.auth.principals import Role
from service.clock import FrozenClock
from service.settings import Settings
from tests.events.support import Hook, Received, SpecVerifier, hook_settings, receivers, register
from tests.records_requests.support import RequestKit
from tests.referrals.support import PLANTED, make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World

ORGS = ("vsp", "shelter", "police", "unrelated")
PLANTED_NOTE = "Planted refusal note Ñ: no webhook may carry it"


@pytest.fixture
def clock() -> FrozenClock:
    # Real time: the standardwebhooks package rejects timestamps five minutes off its clock.
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return hook_settings(
        db, key_dir, webhook_dispatch_in_serve=True, webhook_dispatch_interval_seconds=0.05
    )


async def _feed(client: httpx.AsyncClient, world: World, org: str, after: int) -> list[Any]:
    r = await client.get(
        f"/v1/events?after={after}&limit=200", headers=world.headers(org, Role.caseworker)
    )
    assert r.status_code == 200, r.text
    items: list[Any] = r.json()["items"]
    return items


async def _story(client: httpx.AsyncClient, world: World) -> None:
    kit = await make_kit(client, world)
    # sent -> delivered -> accepted -> closed
    first = await kit.send()
    assert (await kit.deliver(first["id"])).status_code == 200
    for action, body in (("accept", None), ("close", {"outcome": "services_provided"})):
        r = await client.post(
            f"/v1/referrals/{first['id']}/{action}", json=body, headers=kit.staff("shelter")
        )
        assert r.status_code == 200, r.text
    # sent -> declined (with a reason code)
    second = await kit.send({"needs": "planted needs two"})
    r = await client.post(
        f"/v1/referrals/{second['id']}/decline",
        json={"reason": "no_capacity"},
        headers=kit.staff("shelter"),
    )
    assert r.status_code == 200, r.text
    # sent -> withdrawn by the sender before delivery
    third = await kit.send({"needs": "planted needs three"})
    r = await client.post(f"/v1/referrals/{third['id']}/withdraw", headers=kit.staff("vsp"))
    assert r.status_code == 200, r.text
    # The consent the shelter received fields under is withdrawn.
    r = await client.post(
        f"/v1/consents/{kit.consent['id']}/revoke",
        json={"reason": "survivor asked"},
        headers=kit.staff("vsp"),
    )
    assert r.status_code == 200, r.text
    # A records request, refused.
    requests = RequestKit(client=client, world=world)
    made = await requests.made()
    r = await requests.respond(made["id"], {"decision": "refuse", "note": PLANTED_NOTE})
    assert r.status_code == 200, r.text


def _in_order_per_object(received: list[Received]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = defaultdict(list)
    for request in received:
        event = request.json()
        seqs[f"{event['object_type']}:{event['object_id']}"].append(event["seq"])
    for key, numbers in seqs.items():
        assert numbers == sorted(numbers), f"{key} arrived out of order: {numbers}"
    return seqs


async def test_a_story_reaches_each_organization_in_order_signed_v1_and_v1a(
    client: httpx.AsyncClient, world: World
) -> None:
    with receivers(len(ORGS)) as started:
        by_org = dict(zip(ORGS, started, strict=True))
        hooks: dict[str, Hook] = {}
        start: dict[str, int] = {}
        for org, receiver in by_org.items():
            hooks[org] = await register(client, world, org, receiver.url(f"/hooks/{org}"))
            feed = await _feed(client, world, org, 0)
            start[org] = feed[-1]["seq"] if feed else 0

        await _story(client, world)

        expected = {org: await _feed(client, world, org, start[org]) for org in ORGS}
        types = {e["type"] for items in expected.values() for e in items}
        assert {
            "referral.sent",
            "referral.delivered",
            "referral.accepted",
            "referral.closed",
            "referral.declined",
            "referral.withdrawn",
            "consent.withdrawn",
            "records_request.created",
            "records_request.responded",
        } <= types
        received = {
            org: await by_org[org].wait_for(len(expected[org])) for org in ORGS
        }  # arrived within the wait: the in-app dispatcher runs

    key = await client.get(
        "/v1/webhooks/signing-key", headers=world.headers("vsp", Role.caseworker)
    )
    assert key.status_code == 200, key.text
    v1a = SpecVerifier(key.json()["public_key"])
    for org in ORGS:
        got = received[org]
        # Exactly the organization's feed: no more (isolation), no fewer (nothing lost).
        assert sorted((r.json()["seq"], r.json()) for r in got) == sorted(
            (e["seq"], e) for e in expected[org]
        ), org
        assert len({r.webhook_id for r in got}) == len(got)  # once each in a normal run
        _in_order_per_object(got)
        v1 = Webhook(hooks[org].secret)
        for request in got:
            assert request.path == f"/hooks/{org}"
            assert request.headers["content-type"] == "application/json"
            assert request.webhook_id == request.json()["id"]
            v1.verify(request.body, request.headers)  # raises if no v1 signature verifies
            assert v1a.verify(request), request.headers["webhook-signature"]
    # No body carries a field value or free text (events name identifiers and codes).
    planted = [*PLANTED.values(), PLANTED_NOTE, "survivor asked"]
    for request in (r for got in received.values() for r in got):
        text = request.body.decode()
        assert not any(value in text for value in planted)
    # The unrelated organization learned nothing about the referral or the consent.
    assert {r.json()["object_type"] for r in received["unrelated"]} <= {"organization"}
    # A forged body fails both checks (the verifiers are not vacuous).
    forged = received["shelter"][0]
    tampered = Received(
        forged.path,
        forged.headers,
        forged.body.replace(b'"seq":', b'"seq": '),
        forged.at,
        forged.peer_port,
    )
    assert not v1a.verify(tampered)
    with pytest.raises(Exception, match="signature"):
        Webhook(hooks["shelter"].secret).verify(tampered.body, tampered.headers)
    other = Webhook(hooks["vsp"].secret)
    with pytest.raises(Exception, match="signature"):
        other.verify(forged.body, forged.headers)
