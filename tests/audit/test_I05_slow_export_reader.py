"""SECURITY-TESTS I05/G09 for audit exports (issue 22, item 10): one auditor reading
an export at 1 KB/s from a real socket against a live server must not stall anyone
else (on SQLite the export used to hold the only connection, and the write lock,
until its last byte: every other request waited and got 503); exports beyond the
caps get 429 with Retry-After; and an export cut short is told from a complete
one (JSON Lines: no closing checkpoint line; CSV: no `end` row)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.audit_verify import VerificationError, verify_lines

from service.audit import service as audit_service
from service.audit.log import AuditEvent, append
from service.auth.principals import Role
from service.clock import FrozenClock
from service.db.engine import session_scope
from tests.support.databases import TestDatabase
from tests.support.processes import start_service, wait_until_healthy
from tests.support.world import TokenFactory, World

PAD = "x" * 40_000  # entries of ~40 KB: a few MB of export, far beyond socket buffers


async def _grow_log(app: Any, clock: FrozenClock, entries: int) -> None:
    async with session_scope(app.state.sessionmaker) as session:
        for _ in range(entries):
            await append(
                session,
                AuditEvent(action="test.padding", actor=None, details={"pad": PAD}),
                clock=clock,
            )


class SlowReader:
    """A raw socket with a tiny receive buffer that reads 1 KB per second."""

    def __init__(self, base: str, path: str, headers: dict[str, str]) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sock.settimeout(10)
        self.head = self.sock.recv(1024)

    def read_a_kilobyte(self) -> bytes:
        return self.sock.recv(1024)

    def close(self) -> None:
        self.sock.close()


async def test_I05_a_slow_export_reader_stalls_nobody_and_exports_are_capped(
    app: Any, world: World, db: TestDatabase, key_dir: Path, clock: FrozenClock
) -> None:
    await _grow_log(app, clock, 150)
    server, base = await start_service(
        db,
        key_dir,
        ACCORD_DATABASE_POOL_TIMEOUT="2",
        ACCORD_AUDIT_EXPORT_MAX_CONCURRENT="2",
        ACCORD_AUDIT_EXPORT_MAX_PER_PRINCIPAL="1",
    )
    try:
        await wait_until_healthy(base)
        tokens = TokenFactory(world.tokens.settings, FrozenClock(datetime.now(UTC)))
        oversight = tokens.headers(world.orgs["oversight"], Role.auditor)
        slow = await asyncio.to_thread(SlowReader, base, "/v1/audit/export", oversight)
        try:
            assert slow.head.startswith(b"HTTP/1.1 200"), slow.head[:200]
            caseworker = tokens.headers(world.orgs["vsp"], Role.caseworker)
            async with httpx.AsyncClient(base_url=base, timeout=15.0) as http:
                # Others read and write while the reader crawls along, 1 KB a second.
                for _ in range(3):
                    await asyncio.to_thread(slow.read_a_kilobyte)
                    started = time.perf_counter()
                    created = await http.post("/v1/subjects", json={}, headers=caseworker)
                    assert created.status_code == 201, created.text
                    listed = await http.get("/v1/referrals?box=sent", headers=caseworker)
                    assert listed.status_code == 200, listed.text
                    assert time.perf_counter() - started < 2.0
                    await asyncio.sleep(1.0)
                # The same principal again: over its cap.
                again = await http.get("/v1/audit/export", headers=oversight)
                assert again.status_code == 429, again.text
                assert int(again.headers["retry-after"]) > 0
                # Another auditor fills the total (2), a third is refused.
                second = tokens.headers(world.orgs["oversight"], Role.auditor, sub="bob")
                third = tokens.headers(world.orgs["vsp"], Role.auditor)
                async with http.stream("GET", "/v1/audit/export", headers=second) as held:
                    assert held.status_code == 200
                    refused = await http.get("/v1/audit/export", headers=third)
                    assert refused.status_code == 429
                    assert int(refused.headers["retry-after"]) > 0
        finally:
            slow.close()
        # The reader gone, its slot comes back.
        async with httpx.AsyncClient(base_url=base, timeout=30.0) as http:
            for _ in range(100):
                after = await http.get("/v1/audit/export?format=csv", headers=oversight)
                if after.status_code != 429:
                    break
                await asyncio.sleep(0.2)
            assert after.status_code == 200
            assert after.text.splitlines()[-1].startswith("end,")
    finally:
        server.terminate()
        await server.wait()


async def test_I05_an_export_cut_short_is_detectable(
    app: Any, client: httpx.AsyncClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    auditor = world.headers("oversight", Role.auditor)
    key = app.state.keyring.checkpoint.public_key
    origin = app.state.settings.audit_origin
    whole = await client.get("/v1/audit/export", headers=auditor)
    lines = whole.content.splitlines()
    verify_lines(lines, public_key=key, origin=origin, require_end=True)
    for cut in (lines[:-1], lines[:-2]):
        with pytest.raises(VerificationError, match=r"cut short|no checkpoint"):
            verify_lines(cut, public_key=key, origin=origin, require_end=True)
    # Even given the checkpoint out of band, a cut export does not verify.
    checkpoint_text = json.loads(lines[-1])["checkpoint"]
    with pytest.raises(VerificationError, match="cut short"):
        verify_lines(
            lines[:-1],
            public_key=key,
            origin=origin,
            checkpoint_text=checkpoint_text,
            require_end=True,
        )
    csv_lines = (await client.get("/v1/audit/export?format=csv", headers=auditor)).text
    rows = csv_lines.splitlines()
    assert rows[-1].split(",")[:3] == ["end", str(len(rows) - 2), rows[-1].split(",")[2]]
    # A window that fails mid-stream: the response ends without its closing line.
    monkeypatch.setattr(audit_service, "EXPORT_BATCH", 2)
    real = audit_service.list_entries
    calls = 0

    async def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the database went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(audit_service, "list_entries", failing)
    received: list[bytes] = []

    async def read_all() -> None:
        async with client.stream("GET", "/v1/audit/export", headers=auditor) as response:
            async for chunk in response.aiter_bytes():
                received.append(chunk)

    with pytest.raises((httpx.HTTPError, RuntimeError)):
        await read_all()
    with pytest.raises(VerificationError):
        verify_lines(
            b"".join(received).splitlines(), public_key=key, origin=origin, require_end=True
        )
