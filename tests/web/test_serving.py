"""`accord serve --workers N` (service/web/serving.py): each worker accepts on its own
SO_REUSEPORT socket, so the kernel spreads connections over all of them; a second
service cannot take the same address; a worker that dies is started again, one
that cannot start stops the command; SIGTERM stops every worker."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from service.web.serving import listening_socket
from tests.support.databases import TestDatabase
from tests.support.processes import children, free_port, service_env, wait_until_healthy

ROOT = Path(__file__).resolve().parents[2]


def test_workers_sockets_share_a_port_and_nothing_else_can_take_it() -> None:
    port = free_port()
    first = listening_socket("127.0.0.1", port, reuse_port=True)
    second = listening_socket("127.0.0.1", port, reuse_port=True)
    try:
        assert first.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        # The check `serve_workers` makes first.
        with pytest.raises(OSError, match="in use"):
            listening_socket("127.0.0.1", port, reuse_port=False)
    finally:
        first.close()
        second.close()


async def _kill_group(server: asyncio.subprocess.Process) -> None:
    """If the command is still running (a failed test), kill it and its workers:
    killing only the parent would leave the workers serving."""
    if server.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        await server.wait()


def _children(pid: int) -> list[int]:
    """Workers only: not the tracker, nor the webhook dispatcher's process."""
    return [
        child
        for child, cmdline in children(pid)
        if not (b"resource_tracker" in cmdline or b"\0dispatch\0" in cmdline)
    ]


def _age(pid: int) -> float:
    """Seconds since the process started (from /proc)."""
    started = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - started / os.sysconf("SC_CLK_TCK")


def _established(port: int) -> set[str]:
    sockets = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            sockets.add(f"socket:[{fields[9]}]")
    return sockets


def _holding(pid: int, sockets: set[str]) -> int:
    return sum(os.readlink(fd) in sockets for fd in Path(f"/proc/{pid}/fd").iterdir())


async def test_two_workers_share_the_connections_restart_and_stop_together(
    db: TestDatabase, key_dir: Path
) -> None:
    if db.engine != "postgresql":
        pytest.skip("SQLite is served by one process")
    port = free_port()
    env = service_env(db, key_dir, ACCORD_LOG_LEVEL="WARNING")
    server = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "accord"), "serve", "--port", str(port), "--workers", "2",
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(base)
        workers = _children(server.pid)
        assert len(workers) == 2, workers
        # 24 connections: all on one worker would have odds of 2**-23 by hash.
        streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(24)]
        for reader, writer in streams:
            writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            await writer.drain()
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        sockets = _established(port)
        held = sorted(_holding(pid, sockets) for pid in workers)
        assert sum(held) == 24, held
        assert held[0] > 0, f"every connection went to one worker: {held}"
        for _, writer in streams:
            writer.close()
        # A worker that dies after it started is started again (one that dies within
        # its first 15 s failed to start, and stops the command: the next test).
        await asyncio.sleep(max(0.0, 16 - _age(workers[0])))
        os.kill(workers[0], signal.SIGKILL)
        replaced: list[int] = []
        for _ in range(300):
            replaced = _children(server.pid)
            if len(replaced) == 2 and workers[0] not in replaced:
                break
            await asyncio.sleep(0.05)
        assert len(replaced) == 2, replaced
        assert workers[0] not in replaced, replaced
        await wait_until_healthy(base)
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), timeout=40) == 0
        gone = [*workers, *replaced]
        assert not [pid for pid in gone if os.path.exists(f"/proc/{pid}")]  # noqa: ASYNC240
    finally:
        await _kill_group(server)


async def test_workers_that_cannot_start_stop_the_command(
    db: TestDatabase, key_dir: Path, tmp_path: Path
) -> None:
    """H09 with several workers: an invalid policy set makes every worker fail at
    start; the command exits non-zero instead of starting them again forever."""
    if db.engine != "postgresql":
        pytest.skip("SQLite is served by one process")
    # No policy files at all.
    env = service_env(db, key_dir, ACCORD_POLICY_DIR=str(tmp_path))
    server = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "accord"), "serve", "--port", str(free_port()),
        "--workers", "2", cwd=ROOT, env=env, start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        code = await asyncio.wait_for(server.wait(), timeout=60)
    finally:
        await _kill_group(server)
    assert code != 0
