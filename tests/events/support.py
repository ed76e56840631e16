"""Helpers for the webhook delivery tests: a real loopback HTTP receiver, endpoint
registration, a dispatcher on the test's app, events written through the outbox, and
signature checks written here from the Standard Webhooks specification's text (not
with the service's own code).

The receiver is an HTTP/1.1 server on 127.0.0.1 with a random port, in its own
threads (so it keeps answering whatever the test's event loop does). It records every
request when it arrives and can be told to answer with any status, to redirect, or to
hold requests unanswered (`hang`) until released.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from service import crypto
from service.auth.principals import Role
from service.clock import Clock
from service.events import signing
from service.events.catalog import EventType
from service.events.dispatch import DispatchConfig, Dispatcher
from service.events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from service.events.outbox import emit
from service.settings import Settings
from tests.support import databases
from tests.support.databases import TestDatabase
from tests.support.world import World

LOOPBACK = ["127.0.0.0/8"]  # the allow-list of these tests (docs/configuration.md)
ALL_TYPES = [t.value for t in EventType if t is not EventType.webhook_test]


def hook_settings(db: TestDatabase, key_dir: Path, **extra: Any) -> Settings:
    """The app's settings with the loopback network allowed for webhooks."""
    return databases.settings_for(db, key_dir, webhook_allowed_networks=LOOPBACK, **extra)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.monotonic() on arrival
    peer_port: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that gave up (a timeout, a refused certificate) is expected


class Receiver:
    """`with Receiver() as r:`; `r.url()` is its address; set `status`, `location`,
    `hang` at any time."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.status = 204
        self.location: str | None = None
        self.hang = False
        self.held = 0  # requests being held unanswered right now
        self.most_held = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._tls = tls
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        if tls is not None:
            # The handshake in the request's thread, where a refused one ends quietly.
            self._server.socket = tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Answer every held request, and hold no more."""
        self.hang = False
        self._release.set()

    def ids(self) -> list[str]:
        with self._lock:
            return [r.webhook_id for r in self.requests]

    async def wait_for(self, count: int, *, within: float = 15.0) -> list[Received]:
        """Wait until at least `count` requests arrived; all of them."""
        deadline = time.monotonic() + within
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.requests)} of {count} webhooks arrived")
            await asyncio.sleep(0.02)
        with self._lock:
            return list(self.requests)

    async def wait_held(self, count: int, *, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        while self.held < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.held} of {count} requests held at once")
            await asyncio.sleep(0.02)

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            self.requests.append(
                Received(
                    path=handler.path,
                    headers={k.lower(): v for k, v in handler.headers.items()},
                    body=body,
                    at=time.monotonic(),
                    peer_port=int(handler.client_address[1]),
                )
            )

    def _hold(self) -> None:
        with self._lock:
            self.held += 1
            self.most_held = max(self.most_held, self.held)
        try:
            self._release.wait(timeout=60)
        finally:
            with self._lock:
                self.held -= 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                receiver._record(self, body)
                if receiver.hang:
                    receiver._hold()
                try:
                    self.send_response(receiver.status)
                    if receiver.location is not None:
                        self.send_header("location", receiver.location)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the dispatcher gave up on this request already

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@contextmanager
def receivers(count: int) -> Iterator[list[Receiver]]:
    started = [Receiver() for _ in range(count)]
    for r in started:
        r.__enter__()
    try:
        yield started
    finally:
        for r in started:
            r.__exit__()


@dataclass(frozen=True)
class Hook:
    id: uuid.UUID
    org_id: uuid.UUID
    secret: str  # "whsec_..."


async def register(
    client: httpx.AsyncClient,
    world: World,
    org: str,
    url: str,
    event_types: Iterable[str] = ALL_TYPES,
) -> Hook:
    """Register an endpoint through the API as the organization's admin."""
    org_id = world.orgs[org]
    r = await client.post(
        f"/v1/organizations/{org_id}/webhooks",
        json={"url": url, "event_types": list(event_types)},
        headers=world.headers(org, Role.org_admin),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["secret"].startswith("whsec_")
    return Hook(uuid.UUID(body["id"]), org_id, body["secret"])


async def insert_endpoint(
    app: Any, org_id: uuid.UUID, url: str, *, clock: Clock, event_types: Iterable[str] = ALL_TYPES
) -> Hook:
    """An endpoint row as registration would leave it, for a URL registration would
    refuse today (a name that resolved elsewhere when it was registered)."""
    raw = signing.new_secret()
    hook = Hook(uuid.uuid4(), org_id, signing.format_secret(raw))
    async with app.state.sessionmaker() as session:
        session.add(
            WebhookEndpoint(
                id=hook.id,
                org_id=org_id,
                url=url,
                event_types=list(event_types),
                paused=False,
                secret_sealed=crypto.seal_secret(app.state.keyring.webhook_secrets_key, raw),
                created_at=clock.now(),
                created_by="test",
            )
        )
        await session.commit()
    return hook


async def emit_events(
    app: Any, org_id: uuid.UUID, objects: Iterable[uuid.UUID], *, at: datetime
) -> list[uuid.UUID]:
    """One `referral.sent` event per object (repeat an object for several events about
    it), each in its own transaction as a change would write it; their ids in order."""
    ids = []
    for object_id in objects:
        async with app.state.sessionmaker() as session:
            (event_id,) = await emit(
                session,
                kind=EventType.referral_sent,
                to=[org_id],
                object_type="referral",
                object_id=object_id,
                data={"referral_id": str(object_id), "status": "sent"},
                at=at,
            )
            await session.commit()
        ids.append(event_id)
    return ids


@asynccontextmanager
async def dispatcher(app: Any, **config: Any) -> AsyncIterator[Dispatcher]:
    """A dispatcher on the app's database, keys, clock and metrics; `config` overrides
    fields of the configuration the app's settings give."""
    base = DispatchConfig.from_settings(app.state.settings)
    async with Dispatcher(
        app.state.sessionmaker,
        signer=app.state.keyring.webhook,
        secrets_key=app.state.keyring.webhook_secrets_key,
        config=dataclasses.replace(base, **config),
        clock=app.state.clock,
        metrics=app.state.metrics,
    ) as running:
        yield running


async def idle(running: Dispatcher, *, within: float = 30.0) -> int:
    """`run_until_idle`, failing (not hanging) if it never comes to rest."""
    async with asyncio.timeout(within):
        return await running.run_until_idle()


async def deliveries(app: Any) -> list[WebhookDelivery]:
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(WebhookDelivery))).all()
        await session.commit()
    return list(rows)


async def attempts(app: Any, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    async with app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id == delivery_id)
                .order_by(WebhookAttempt.id)
            )
        ).all()
        await session.commit()
    return list(rows)


class SpecVerifier:
    """`v1a` checked as the Standard Webhooks specification describes it, with the
    `cryptography` package: the signed content is `{webhook-id}.{webhook-timestamp}.{body}`;
    `webhook-signature` is a space-delimited list of `{version},{base64 signature}`;
    `v1a` is an Ed25519 signature; public keys are `whpk_` + base64 of the key's 32
    bytes. A verifier must accept if any listed signature of its version verifies."""

    PREFIX: ClassVar[str] = "whpk_"

    def __init__(self, public_key: str) -> None:
        assert public_key.startswith(self.PREFIX)
        self._key = Ed25519PublicKey.from_public_bytes(
            base64.b64decode(public_key[len(self.PREFIX) :], validate=True)
        )

    def verify(self, received: Received) -> bool:
        content = b"%s.%s.%s" % (
            received.headers["webhook-id"].encode(),
            received.headers["webhook-timestamp"].encode(),
            received.body,
        )
        for item in received.headers["webhook-signature"].split(" "):
            version, _, signature = item.partition(",")
            if version != "v1a":
                continue
            try:
                self._key.verify(base64.b64decode(signature, validate=True), content)
            except (InvalidSignature, ValueError):
                continue
            return True
        return False


async def feed(
    client: httpx.AsyncClient, world: World, org: str, after: int = 0
) -> list[dict[str, Any]]:
    """Every event in `org`'s feed after `after`, page by page, as its caseworker."""
    items: list[dict[str, Any]] = []
    while True:
        r = await client.get(
            f"/v1/events?after={after}&limit=200", headers=world.headers(org, Role.caseworker)
        )
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        if page["next_after"] == after:
            return items
        after = page["next_after"]
