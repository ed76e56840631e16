"""Webhook endpoints (issue 19; API.md, second wave), on both engines.

- An organization's admin creates, lists, reads, changes, pauses, resumes and
  deletes its endpoints; another organization's endpoint is 404, other roles 403,
  and a refused request changes nothing.
- The secret is shown in the creation's and a rotation's answer only, and stored
  sealed: neither its bytes nor its text are in the database. After a rotation the
  previous secret keeps signing (v1, checked with the `standardwebhooks` package)
  for 24 hours.
- Registration refuses loopback, link-local, private and DNS names that resolve to
  them, and plain http in production; the deployer's allow-list lets a private
  receiver in.
- Redelivery and a test event make pending deliveries (the rows are inspected).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service import crypto
from service.app import create_app
from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.clock import FrozenClock
from service.events import signing
from service.events.catalog import EventType
from service.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from service.events.outbox import emit
from service.events.webhooks import MAX_ENDPOINTS_PER_ORG, signing_secrets
from service.settings import Environment, Settings
from tests.support.databases import TestDatabase, settings_for
from tests.support.webhooks import PUBLIC_URL
from tests.support.world import TokenFactory, World

URL = PUBLIC_URL + "/inbox?token=receiver-token-123"  # a path and query audit must not keep
TYPES = ["referral.sent", "consent.withdrawn"]


def _path(world: World, org: str = "vsp", *rest: str) -> str:
    return "/".join((f"/v1/organizations/{world.orgs[org]}/webhooks", *rest))


def _admin(world: World, org: str = "vsp") -> dict[str, str]:
    return world.headers(org, Role.org_admin)


async def _create(
    client: httpx.AsyncClient, world: World, *, url: str = URL, types: list[str] = TYPES
) -> dict[str, Any]:
    r = await client.post(
        _path(world), json={"url": url, "event_types": types}, headers=_admin(world)
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _row(app: Any, endpoint_id: str) -> WebhookEndpoint:
    async with app.state.sessionmaker() as session:
        row: WebhookEndpoint = await session.get_one(WebhookEndpoint, uuid.UUID(endpoint_id))
        return row


async def _deliveries(app: Any, endpoint_id: str) -> list[WebhookDelivery]:
    async with app.state.sessionmaker() as session:
        stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == uuid.UUID(endpoint_id))
        return list((await session.scalars(stmt)).all())


async def _emit(app: Any, world: World, kind: EventType, org: str = "vsp") -> uuid.UUID:
    """An event for the organization, as a domain's change would write it."""
    async with app.state.sessionmaker() as session:
        (event_id,) = await emit(
            session,
            kind=kind,
            to=[world.orgs[org]],
            object_type="referral",
            object_id=uuid.uuid4(),
            data={"status": "sent"},
            at=world.clock.now(),
        )
        await session.commit()
    return event_id


def _raw(secret: str) -> bytes:
    assert secret.startswith("whsec_")
    raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    assert len(raw) == 32
    return raw


async def test_an_admin_creates_lists_reads_pauses_resumes_and_deletes_an_endpoint(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    admin = _admin(world)
    created = await _create(client, world)
    assert created["url"] == URL
    assert created["event_types"] == TYPES
    assert created["paused"] is False
    assert created["org_id"] == str(world.orgs["vsp"])
    endpoint = created["id"]

    listed = await client.get(_path(world), headers=admin)
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["items"]] == [endpoint]
    got = await client.get(_path(world, "vsp", endpoint), headers=admin)
    assert got.status_code == 200
    assert got.json() == {k: v for k, v in created.items() if k != "secret"}

    paused = await client.patch(_path(world, "vsp", endpoint), json={"paused": True}, headers=admin)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    # Resuming changes nothing else (the URL, the types, a failing mark).
    async with app.state.sessionmaker() as session:
        row = await session.get_one(WebhookEndpoint, uuid.UUID(endpoint))
        row.failing_since = world.clock.now()
        await session.commit()
    resumed = await client.patch(
        _path(world, "vsp", endpoint), json={"paused": False}, headers=admin
    )
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False
    assert resumed.json()["url"] == URL
    assert resumed.json()["event_types"] == TYPES
    assert resumed.json()["failing_since"] is not None

    changed = await client.patch(
        _path(world, "vsp", endpoint),
        json={"event_types": ["referral.accepted"], "url": PUBLIC_URL + "/v2"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["referral.accepted"]
    assert changed.json()["url"] == PUBLIC_URL + "/v2"

    deleted = await client.delete(_path(world, "vsp", endpoint), headers=admin)
    assert deleted.status_code == 204
    assert deleted.content == b""
    for method, rest in (
        ("GET", ()),
        ("PATCH", ()),
        ("DELETE", ()),
        ("POST", ("rotate-secret",)),
        ("POST", ("test",)),
        ("GET", ("deliveries",)),
    ):
        body = {"paused": True} if method == "PATCH" else None
        r = await client.request(
            method, _path(world, "vsp", endpoint, *rest), json=body, headers=admin
        )
        assert r.status_code == 404, (method, rest, r.text)
    assert (await client.get(_path(world), headers=admin)).json()["items"] == []
    row = await _row(app, endpoint)
    assert row.deleted_at == world.clock.now()
    assert row.secret_sealed == b""  # a deleted endpoint's secret is erased

    async with app.state.sessionmaker() as session:
        entries = (
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.like("webhook.%"))
                .order_by(AuditEntry.seq)
            )
        ).all()
    assert [e.action for e in entries] == [
        "webhook.created",
        "webhook.updated",
        "webhook.updated",
        "webhook.updated",
        "webhook.deleted",
    ]
    for entry in entries:
        assert endpoint in entry.body
        assert "inbox" not in entry.body
        assert "receiver-token" not in entry.body
        assert "/v2" not in entry.body
        assert created["secret"].removeprefix("whsec_") not in entry.body
    assert json.loads(entries[0].body)["details"]["host"] == "93.184.215.14"


async def test_the_secret_is_shown_only_by_creation_and_rotation_and_stored_sealed(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    admin = _admin(world)
    created = await _create(client, world)
    first = created["secret"]
    endpoint = created["id"]
    rotated = await client.post(_path(world, "vsp", endpoint, "rotate-secret"), headers=admin)
    assert rotated.status_code == 200
    second = rotated.json()["secret"]
    assert second != first
    await client.post(_path(world, "vsp", endpoint, "test"), headers=admin)

    answers = [
        await client.get(_path(world), headers=admin),
        await client.get(_path(world, "vsp", endpoint), headers=admin),
        await client.patch(_path(world, "vsp", endpoint), json={"paused": True}, headers=admin),
        await client.get(_path(world, "vsp", endpoint, "deliveries"), headers=admin),
        await client.get("/v1/events", headers=admin),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert 'secret"' not in answer.text
        for secret in (first, second):
            assert secret.removeprefix("whsec_") not in answer.text

    # Sealed: neither the bytes nor the text is in the row or anywhere in the database.
    key = app.state.keyring.webhook_secrets_key
    row = await _row(app, endpoint)
    assert row.previous_secret_sealed is not None
    stored = row.secret_sealed + row.previous_secret_sealed
    everything = db.raw_bytes()
    for secret in (first, second):
        raw = _raw(secret)
        text = secret.removeprefix("whsec_").encode()
        for haystack in (stored, everything):
            assert raw not in haystack
            assert text not in haystack
            assert base64.b64encode(raw) not in haystack
            assert raw.hex().encode() not in haystack
    assert crypto.open_secret(key, row.secret_sealed) == _raw(second)
    assert crypto.open_secret(key, row.previous_secret_sealed) == _raw(first)


async def test_after_a_rotation_the_previous_secret_signs_too_for_a_day(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    admin = _admin(world)
    created = await _create(client, world)
    endpoint = created["id"]
    rotated = (
        await client.post(_path(world, "vsp", endpoint, "rotate-secret"), headers=admin)
    ).json()
    overlap_end = datetime.fromisoformat(rotated["previous_secret_until"])
    assert overlap_end == clock.now() + timedelta(hours=24)
    shown = (await client.get(_path(world, "vsp", endpoint), headers=admin)).json()
    assert shown["previous_secret_until"] == rotated["previous_secret_until"]
    key = app.state.keyring.webhook_secrets_key

    def verifies(secret: str) -> bool:
        """A delivery signed with the endpoint's secrets as of the clock's now, checked
        by the independent Standard Webhooks library with `secret` (the signature's
        timestamp is the real time: the library checks it against its own clock)."""
        row_secrets = signing_secrets(row, key=key, now=clock.now())
        body = b'{"type": "referral.sent"}'
        headers = signing.headers(
            str(uuid.uuid4()),
            int(time.time()),
            body,
            secrets=row_secrets,
            signer=app.state.keyring.webhook,
        )
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    row = await _row(app, endpoint)
    assert verifies(rotated["secret"])
    assert verifies(created["secret"])  # the overlap
    clock.advance(24 * 3600 - 1)
    assert verifies(created["secret"])
    clock.advance(1)
    assert not verifies(created["secret"])  # the overlap is over
    assert verifies(rotated["secret"])
    later = await client.get(_path(world, "vsp", endpoint), headers=_admin(world))  # a fresh token
    assert later.status_code == 200
    assert later.json()["previous_secret_until"] is None


@pytest.mark.security
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",  # a DNS name that resolves to the loopback
        "http://0.0.0.0/hook",
        "ftp://93.184.215.14/hook",
        "https://user:password@93.184.215.14/hook",
        "https://93.184.215.14/hook#fragment",
        "https://93.184.215.14/ hook",
        "https:///hook",
    ],
)
async def test_registration_refuses_an_address_in_the_services_own_network(
    url: str, app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    r = await client.post(
        _path(world), json={"url": url, "event_types": TYPES}, headers=_admin(world)
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["path"] for e in r.json()["errors"]] == ["/url"] * len(r.json()["errors"])
    assert db.dump() == before


async def test_a_url_change_is_checked_as_a_registration_is(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    endpoint = (await _create(client, world))["id"]
    before = db.dump()
    for url in ("http://127.0.0.1/hook", "http://localhost/hook", "http://10.1.2.3/"):
        r = await client.patch(
            _path(world, "vsp", endpoint), json={"url": url, "paused": True}, headers=_admin(world)
        )
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["path"] == "/url"
    assert db.dump() == before


async def test_production_refuses_plain_http(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, app_settings: Settings
) -> None:
    # The production rule as requests read it. (A production app would also demand an
    # identity provider and key files at start-up: model_copy skips those checks.)
    app.state.settings = app_settings.model_copy(update={"environment": Environment.production})
    before = db.dump()
    plain = await client.post(
        _path(world),
        json={"url": "http://93.184.215.14/hook", "event_types": TYPES},
        headers=_admin(world),
    )
    assert plain.status_code == 422
    assert "https" in plain.json()["errors"][0]["message"]
    assert db.dump() == before
    assert (await _create(client, world, url="https://93.184.215.14/hook"))["paused"] is False


async def test_the_allow_list_lets_a_receiver_on_a_listed_network_register(
    db: TestDatabase, key_dir: Path, clock: FrozenClock
) -> None:
    settings = settings_for(db, key_dir, webhook_allowed_networks=["127.0.0.0/8"])
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        world = await World.build(app, TokenFactory(settings, clock), clock)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://accord.test") as client:
            ok = await _create(client, world, url="http://127.0.0.1:9/hook")
            assert ok["url"] == "http://127.0.0.1:9/hook"
            for url in ("http://10.0.0.1/hook", "http://169.254.169.254/", "http://[::1]/"):
                r = await client.post(
                    _path(world), json={"url": url, "event_types": TYPES}, headers=_admin(world)
                )
                assert r.status_code == 422, url


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"url": URL, "event_types": []}, "/event_types"),
        ({"url": URL, "event_types": ["referral.sent", "referral.sent"]}, "/event_types/1"),
        ({"url": URL, "event_types": ["referral.nonsense"]}, "/event_types/0"),
        ({"url": URL, "event_types": ["webhook.test"]}, "/event_types/0"),
        ({"url": URL}, "/event_types"),
        ({"event_types": TYPES}, "/url"),
        ({"url": "https://93.184.215.14/" + "a" * 2048, "event_types": TYPES}, "/url"),
        ({"url": URL, "event_types": TYPES, "description": "free text"}, "/description"),
        ({"url": URL, "event_types": TYPES, "secret": "whsec_" + "A" * 44}, "/secret"),
    ],
)
async def test_a_body_that_breaks_a_rule_is_refused_and_stores_nothing(
    body: dict[str, Any], path: str, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    before = db.dump()
    r = await client.post(_path(world), json=body, headers=_admin(world))
    assert r.status_code == 422, r.text
    assert path in [e["path"] for e in r.json()["errors"]]
    assert db.dump() == before


async def test_a_change_that_breaks_a_rule_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    endpoint = (await _create(client, world))["id"]
    before = db.dump()
    bodies: list[dict[str, Any]] = [
        {},
        {"url": None},
        {"paused": None},
        {"event_types": []},
        {"event_types": ["referral.sent", "referral.sent"]},
        {"paused": "yes"},
        {"secret": "whsec_" + "A" * 44},
    ]
    for body in bodies:
        r = await client.patch(_path(world, "vsp", endpoint), json=body, headers=_admin(world))
        assert r.status_code == 422, (body, r.text)
    assert db.dump() == before


async def test_an_organization_has_a_bounded_number_of_endpoints(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    for _ in range(MAX_ENDPOINTS_PER_ORG):
        await _create(client, world)
    before = db.dump()
    r = await client.post(
        _path(world), json={"url": URL, "event_types": TYPES}, headers=_admin(world)
    )
    assert r.status_code == 422
    assert db.dump() == before


@pytest.mark.security
async def test_another_organizations_endpoint_is_404_and_a_non_admin_403(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    endpoint = (await _create(client, world))["id"]
    delivery = (
        await client.post(_path(world, "vsp", endpoint, "test"), headers=_admin(world))
    ).json()
    routes = [
        ("POST", (), {"url": URL, "event_types": TYPES}),
        ("GET", (), None),
        ("GET", (endpoint,), None),
        ("PATCH", (endpoint,), {"paused": True}),
        ("DELETE", (endpoint,), None),
        ("POST", (endpoint, "rotate-secret"), None),
        ("POST", (endpoint, "test"), None),
        ("GET", (endpoint, "deliveries"), None),
        ("POST", (endpoint, "deliveries", delivery["id"], "redeliver"), None),
    ]
    before = db.dump()
    shelter_admin = _admin(world, "shelter")
    for method, rest, body in routes:
        # The vsp's endpoint through the vsp's path: another organization's admin.
        r = await client.request(
            method, _path(world, "vsp", *rest), json=body, headers=shelter_admin
        )
        assert r.status_code == 404, (method, rest, r.status_code)
        if rest:
            # The vsp's endpoint id under the shelter's own path: still not found.
            r = await client.request(
                method, _path(world, "shelter", *rest), json=body, headers=shelter_admin
            )
            assert r.status_code == 404, (method, rest, r.status_code)
        for role in (Role.caseworker, Role.supervisor, Role.auditor, Role.platform_admin):
            r = await client.request(
                method, _path(world, "vsp", *rest), json=body, headers=world.headers("vsp", role)
            )
            assert r.status_code == 403, (method, rest, role, r.status_code)
    assert db.dump() == before


async def test_delete_cancels_the_pending_deliveries(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    endpoint = (await _create(client, world))["id"]
    await _emit(app, world, EventType.referral_sent)
    await _emit(app, world, EventType.referral_accepted)  # not subscribed: no delivery
    await client.post(_path(world, "vsp", endpoint, "test"), headers=_admin(world))
    async with app.state.sessionmaker() as session:
        done = (await _deliveries(app, endpoint))[0]
        row = await session.get_one(WebhookDelivery, done.id)
        row.status = "succeeded"
        await session.commit()
    assert sorted(d.status for d in await _deliveries(app, endpoint)) == ["pending", "succeeded"]
    assert (
        await client.delete(_path(world, "vsp", endpoint), headers=_admin(world))
    ).status_code == 204
    assert sorted(d.status for d in await _deliveries(app, endpoint)) == ["cancelled", "succeeded"]


async def test_redelivery_makes_the_delivery_pending_again_with_the_same_event(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock
) -> None:
    endpoint = (await _create(client, world))["id"]
    event_id = await _emit(app, world, EventType.referral_sent)
    (delivery,) = await _deliveries(app, endpoint)
    # What a dispatcher leaves after the last retry failed.
    async with app.state.sessionmaker() as session:
        row = await session.get_one(WebhookDelivery, delivery.id)
        row.status, row.attempts, row.last_status_code = "failed", 3, 503
        for code in (500, None, 503):
            session.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    at=clock.now(),
                    status_code=code,
                    error=None if code else "timeout",
                    duration_ms=12,
                )
            )
        await session.commit()
    listed = (
        await client.get(_path(world, "vsp", endpoint, "deliveries"), headers=_admin(world))
    ).json()
    (shown,) = listed["items"]
    assert shown["status"] == "failed"
    assert shown["event_id"] == str(event_id)
    assert shown["event_type"] == "referral.sent"
    assert shown["attempts"] == 3
    assert shown["last_status_code"] == 503
    assert shown["next_attempt_at"] is None
    assert [a["status_code"] for a in shown["history"]] == [500, None, 503]
    assert [a["error"] for a in shown["history"]] == [None, "timeout", None]

    async with app.state.sessionmaker() as session:
        events_before = await session.scalar(select(func.count()).select_from(Event))
    clock.advance(3600)
    r = await client.post(
        _path(world, "vsp", endpoint, "deliveries", str(delivery.id), "redeliver"),
        headers=_admin(world),
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    assert r.json()["event_id"] == str(event_id)
    (after,) = await _deliveries(app, endpoint)
    assert (after.id, after.event_id, after.status, after.attempts) == (
        delivery.id,
        event_id,
        "pending",
        0,
    )
    assert after.next_attempt_at == clock.now()
    async with app.state.sessionmaker() as session:
        events = (await session.scalars(select(Event.id))).all()
    assert events_before == len(events)  # no new event: the same webhook-id

    other = (await _create(client, world))["id"]
    wrong = await client.post(
        _path(world, "vsp", other, "deliveries", str(delivery.id), "redeliver"),
        headers=_admin(world),
    )
    assert wrong.status_code == 404  # a delivery of another endpoint


async def test_a_test_event_goes_to_the_tested_endpoint_only(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    tested = (await _create(client, world, types=["referral.sent"]))["id"]
    other = (
        await _create(
            client, world, types=[t.value for t in EventType if t.value != "webhook.test"]
        )
    )["id"]
    r = await client.post(_path(world, "vsp", tested, "test"), headers=_admin(world))
    assert r.status_code == 202, r.text
    assert r.json()["event_type"] == "webhook.test"
    assert r.json()["status"] == "pending"
    (delivery,) = await _deliveries(app, tested)
    assert await _deliveries(app, other) == []
    assert delivery.status == "pending"
    assert delivery.attempts == 0
    assert delivery.next_attempt_at == world.clock.now()
    assert str(delivery.id) == r.json()["id"]
    async with app.state.sessionmaker() as session:
        event = await session.get_one(Event, delivery.event_id)
    assert event.type == "webhook.test"
    assert event.org_id == world.orgs["vsp"]
    assert event.data == {"endpoint_id": tested}
    feed = (await client.get("/v1/events", headers=world.headers("vsp", Role.caseworker))).json()
    assert feed["items"][-1]["id"] == str(event.id)
    shelter_feed = (
        await client.get("/v1/events", headers=world.headers("shelter", Role.caseworker))
    ).json()
    assert str(event.id) not in json.dumps(shelter_feed)

    # A paused endpoint gets its test when it is resumed (the delivery waits).
    await client.patch(_path(world, "vsp", other), json={"paused": True}, headers=_admin(world))
    assert (
        await client.post(_path(world, "vsp", other, "test"), headers=_admin(world))
    ).status_code == 202
    assert [d.status for d in await _deliveries(app, other)] == ["pending"]


async def test_deliveries_are_listed_newest_first_in_pages(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    endpoint = (await _create(client, world))["id"]
    events = [await _emit(app, world, EventType.referral_sent) for _ in range(3)]
    admin = _admin(world)
    first = (
        await client.get(_path(world, "vsp", endpoint, "deliveries") + "?limit=2", headers=admin)
    ).json()
    assert [d["event_id"] for d in first["items"]] == [str(events[2]), str(events[1])]
    assert first["next_before"] is not None
    rest = (
        await client.get(
            _path(world, "vsp", endpoint, "deliveries") + f"?limit=2&before={first['next_before']}",
            headers=admin,
        )
    ).json()
    assert [d["event_id"] for d in rest["items"]] == [str(events[0])]
    assert rest["next_before"] is None
    none = await client.get(
        _path(world, "vsp", endpoint, "deliveries") + "?status=failed", headers=admin
    )
    assert none.json() == {"items": [], "next_before": None}
    too_many = await client.get(
        _path(world, "vsp", endpoint, "deliveries") + "?limit=201", headers=admin
    )
    assert too_many.status_code == 422


async def test_the_signing_key_is_the_services_webhook_key(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    for org, role in (("shelter", Role.caseworker), ("police", Role.investigator)):
        r = await client.get("/v1/webhooks/signing-key", headers=world.headers(org, role))
        assert r.status_code == 200
        body = r.json()
        assert body["scheme"] == "v1a"
        assert body["public_key"] == "whpk_" + base64.b64encode(
            app.state.keyring.webhook.public_key
        ).decode("ascii")
    assert (await client.get("/v1/webhooks/signing-key")).status_code == 401
