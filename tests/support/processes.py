"""The service as a separate process, for tests that kill, signal or count it:
its environment, a free loopback port, and waiting until it answers."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.databases import TestDatabase


def service_env(db: TestDatabase, key_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a service process on the test's (migrated) database."""
    return {
        **os.environ,
        "ACCORD_ENVIRONMENT": "test",
        "ACCORD_DATABASE_URL": db.url,
        "ACCORD_KEY_DIR": str(key_dir),
        "ACCORD_AUTO_MIGRATE": "false",
        **extra,
    }


ROOT = Path(__file__).resolve().parents[2]


async def start_service(
    db: TestDatabase, key_dir: Path, **extra_env: str
) -> tuple[asyncio.subprocess.Process, str]:
    """The app under uvicorn in its own process on a free loopback port, on the
    test's database; (the process, its base URL). Wait with `wait_until_healthy`."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        cwd=ROOT, env=service_env(db, key_dir, **extra_env),
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


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


def children(pid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of each child of `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append((int(entry.name), cmdline))
    return found
