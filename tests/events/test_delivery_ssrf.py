"""SSRF at delivery time, on both engines: the dispatcher checks where a webhook goes
when it sends it, not only when the endpoint was registered. Endpoints whose host is
(or resolves to) a loopback, private, link-local or IPv4-mapped address are refused
with the attempt recorded as `blocked` and nothing reaches the receiver behind them;
the allow-list (ACCORD_WEBHOOK_ALLOWED_NETWORKS, here the loopback network as in the
other tests) lets exactly its networks through; a redirect is never followed."""

from __future__ import annotations

import socket
import uuid
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.clock import FrozenClock
from service.events.ssrf import parse_networks
from service.settings import Settings
from tests.events.support import (
    LOOPBACK,
    Receiver,
    attempts,
    deliveries,
    dispatcher,
    emit_events,
    hook_settings,
    idle,
    insert_endpoint,
    register,
)
from tests.support.databases import TestDatabase
from tests.support.world import World


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return hook_settings(db, key_dir)


def _targets(receiver: Receiver) -> dict[str, str]:
    port = receiver.port
    return {
        "localhost": f"http://localhost:{port}/hook",  # a name resolving to loopback
        "loopback": f"http://127.0.0.1:{port}/hook",
        "loopback-v6": f"http://[::1]:{port}/hook",
        "mapped-v4": f"http://[::ffff:127.0.0.1]:{port}/hook",
        "private": "http://10.0.0.1/hook",
        "metadata": "http://169.254.169.254/latest/meta-data/",
        "shared": "http://100.64.0.1/hook",
        "unspecified": f"http://0.0.0.0:{port}/hook",
    }


def _localhost_is_loopback_only() -> bool:
    infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    networks = parse_networks(LOOPBACK)
    return all(any(ip_address(i[4][0]) in n for n in networks) for i in infos)


@pytest.mark.security
@pytest.mark.parametrize("allow_loopback", [False, True], ids=["no-allow-list", "loopback-allowed"])
async def test_delivery_refuses_addresses_in_private_networks(
    app: Any, world: World, clock: FrozenClock, allow_loopback: bool
) -> None:
    with Receiver() as receiver:
        names = {}
        for name, url in _targets(receiver).items():
            hook = await insert_endpoint(app, world.orgs["vsp"], url, clock=clock)
            names[hook.id] = name
        await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
        allowed = parse_networks(LOOPBACK if allow_loopback else [])
        async with dispatcher(app, allowed=allowed) as running:
            assert await idle(running) == len(names)
        got = list(receiver.requests)

    outcomes = {}
    for row in await deliveries(app):
        (only,) = await attempts(app, row.id)
        outcomes[names[row.endpoint_id]] = (only.status_code, only.error, row.status)
    # Let through by the allow-list: 127.0.0.1 itself, the same address mapped into
    # IPv6 (reached where the host has dual-stack sockets), and "localhost" where every
    # address it resolves to is in 127/8 (one blocked address blocks the name).
    passed = set()
    if allow_loopback:
        passed = {"loopback", "mapped-v4"} | (
            {"localhost"} if _localhost_is_loopback_only() else set()
        )
    for name, outcome in outcomes.items():
        if name in passed:
            assert outcome[1] != "blocked", name
        else:
            assert outcome == (None, "blocked", "pending"), name
    if allow_loopback:
        assert outcomes["loopback"] == (204, None, "succeeded")
    assert len(got) == sum(1 for name in passed if outcomes[name][0] == 204)
    assert {r.path for r in got} <= {"/hook"}


@pytest.mark.security
@pytest.mark.parametrize("target", ["same-receiver", "metadata"])
async def test_a_redirect_is_a_failed_attempt_and_is_never_followed(
    app: Any, client: httpx.AsyncClient, world: World, clock: FrozenClock, target: str
) -> None:
    with Receiver() as receiver:
        receiver.status = 307
        receiver.location = (
            receiver.url("/followed")  # reachable and allowed: still not followed
            if target == "same-receiver"
            else "http://169.254.169.254/latest/meta-data/"
        )
        await register(client, world, "vsp", receiver.url("/hook"))
        await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
        async with dispatcher(app) as running:
            assert await idle(running) == 1
        paths = [r.path for r in receiver.requests]
    assert paths == ["/hook"]
    (row,) = await deliveries(app)
    (only,) = await attempts(app, row.id)
    assert (only.status_code, only.error) == (307, "redirect")
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "redirect")
