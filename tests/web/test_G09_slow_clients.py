"""SECURITY-TESTS G09, slow clients, against `accord serve` as deployed (its own
process and HTTP protocol, service/web/http_protocol.py):

- 50 connections send a request's head one byte at a time (slowloris), and 10
  connect and send nothing: the server closes each of them once its request head
  is overdue (`ACCORD_HTTP_HEAD_TIMEOUT_SECONDS`, 2 s here), never answering them;
- a keep-alive connection left idle after a response is closed after the
  keep-alive timeout (5 s);
- meanwhile another client is served: every request answered correctly, each well
  within a generous bound (this machine is shared: the bound catches starvation,
  not a slow moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from service.auth.principals import Role
from service.clock import FrozenClock
from tests.support.databases import TestDatabase
from tests.support.processes import free_port, service_env, wait_until_healthy
from tests.support.world import TokenFactory, World

HEAD_TIMEOUT = 2.0
KEEP_ALIVE = 5.0  # service/web/serving.py
SLOW, SILENT = 50, 10
SLACK = 6.0  # how late a close may come on a busy machine
SERVED_WITHIN = 2.0


async def _closed_after(
    reader: asyncio.StreamReader, started: float | None = None
) -> tuple[float, bytes]:
    """Seconds until the server closed the connection, and what it sent first.
    `started`: when the client began to connect. The server's deadline starts when it
    accepts, which is after that; measuring from the moment this coroutine resumes
    instead could start late on a busy machine and make a close look early."""
    started = time.perf_counter() if started is None else started
    data = await reader.read(65536)
    while data and not reader.at_eof():
        more = await reader.read(65536)
        if not more:
            break
        data += more
    return time.perf_counter() - started, data


async def _slowloris(port: int, stop: asyncio.Event) -> tuple[float, bytes]:
    connecting = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /healthz HTTP/1.1\r\nHost: accord\r\nX-Slow: " + b"a" * 4096

    async def trickle() -> None:
        for byte in head:
            if stop.is_set() or writer.is_closing():
                return
            with contextlib.suppress(ConnectionError):
                writer.write(bytes([byte]))
                await writer.drain()
            await asyncio.sleep(0.25)

    sending = asyncio.create_task(trickle())
    try:
        return await _closed_after(reader, connecting)
    finally:
        sending.cancel()
        writer.close()


async def _silent(port: int) -> tuple[float, bytes]:
    connecting = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await _closed_after(reader, connecting)
    finally:
        writer.close()


async def _idle_keep_alive(port: int) -> tuple[float, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: accord\r\n\r\n")
        await writer.drain()
        first = await reader.readuntil(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200"), first
        await reader.readexactly(int(_header(first, b"content-length")))
        return await _closed_after(reader)
    finally:
        writer.close()


def _header(head: bytes, name: bytes) -> bytes:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    raise AssertionError(f"no {name!r} header in {head!r}")


@pytest.mark.crash
async def test_G09_slow_and_silent_clients_are_cut_off_while_others_are_served(
    world: World, db: TestDatabase, key_dir: Path
) -> None:
    port = free_port()
    env = service_env(db, key_dir, ACCORD_HTTP_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT))
    server = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "accord"), "serve", "--port", str(port),
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    stop = asyncio.Event()
    try:
        await wait_until_healthy(f"http://127.0.0.1:{port}", attempts=300)
        tokens = TokenFactory(world.tokens.settings, FrozenClock(datetime.now(UTC)))
        headers = tokens.headers(world.orgs["vsp"], Role.caseworker)
        attackers = [asyncio.create_task(_slowloris(port, stop)) for _ in range(SLOW)]
        attackers += [asyncio.create_task(_silent(port)) for _ in range(SILENT)]
        idle = asyncio.create_task(_idle_keep_alive(port))

        served: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.perf_counter() + HEAD_TIMEOUT + 1
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                created = await http.post("/v1/subjects", json={}, headers=headers)
                assert created.status_code == 201, created.text
                read = await http.get(f"/v1/subjects/{created.json()['id']}", headers=headers)
                served.append(time.perf_counter() - started)
                assert read.status_code == 200, read.text
        closes = await asyncio.wait_for(asyncio.gather(*attackers), HEAD_TIMEOUT + SLACK + 5)
        idle_close = await asyncio.wait_for(idle, KEEP_ALIVE + SLACK + 5)
    finally:
        stop.set()
        if server.returncode is None:
            server.terminate()
            await server.wait()

    assert len(served) >= 3
    assert max(served) < SERVED_WITHIN, served
    for waited, sent in closes:
        assert sent == b""  # closed, never answered
        assert HEAD_TIMEOUT * 0.9 <= waited < HEAD_TIMEOUT + SLACK, waited
    waited, sent = idle_close
    assert sent == b""
    assert KEEP_ALIVE * 0.9 <= waited < KEEP_ALIVE + SLACK, waited
