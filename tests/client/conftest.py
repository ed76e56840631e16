"""Fixtures for the client library's tests: the real app (both engines) behind an
async ASGI transport, and a sync transport bridging to the same app for the sync
client and the CLI (run in a worker thread while the test's event loop serves)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from accord_client.api import AsyncAccordClient
from accord_client.api_models import RetryPolicy

from service.auth.principals import Role
from tests.support.world import World

BASE_URL = "http://accord.test"
NO_WAIT = RetryPolicy(attempts=4, backoff_initial=0.0, jitter=0.0, retry_after_max=0.0)


class SyncASGIBridge(httpx.BaseTransport):
    """A sync transport that runs each request on the app's event loop. Call the sync
    code with `asyncio.to_thread` so that loop is free to serve it."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._loop = loop
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = request.read()

        async def forward() -> tuple[int, httpx.Headers, bytes]:
            inner = httpx.Request(
                request.method, request.url, headers=request.headers, content=body
            )
            response = await self._asgi.handle_async_request(inner)
            return response.status_code, response.headers, await response.aread()

        future = asyncio.run_coroutine_threadsafe(forward(), self._loop)
        status, headers, content = future.result(timeout=120)
        return httpx.Response(status, headers=headers, content=content, request=request)


@pytest.fixture
async def bridge(app: Any) -> SyncASGIBridge:
    return SyncASGIBridge(app, asyncio.get_running_loop())


def staff_token(world: World, org: str = "vsp", role: Role = Role.caseworker) -> str:
    return world.tokens.mint(world.orgs[org], [role])


def async_client(
    app: Any,
    world: World,
    org: str = "vsp",
    role: Role = Role.caseworker,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncAccordClient:
    return AsyncAccordClient(
        base_url=BASE_URL,
        token=staff_token(world, org, role),
        transport=transport or httpx.ASGITransport(app=app),
        retry=NO_WAIT,
    )


@pytest.fixture
async def api(app: Any, world: World) -> AsyncIterator[AsyncAccordClient]:
    """The VSP caseworker's async client."""
    async with async_client(app, world) as client:
        yield client
