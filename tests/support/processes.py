"""The service as a separate process, for tests that kill, signal or count it:
a free loopback port, and waiting until it answers."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until_healthy(base: str, *, attempts: int = 300) -> None:
    """Poll `/healthz` every 50 ms until it answers 200, or fail the test."""
    async with httpx.AsyncClient(base_url=base, timeout=5.0) as probe:
        for _ in range(attempts):
            try:
                if (await probe.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail("the service did not start")
