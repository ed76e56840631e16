"""Several `accord serve` processes (one worker each) on one PostgreSQL database and
one Redis, behind HAProxy on the loopback: the deployment of docs/deployment.md
"Several app nodes behind a load balancer", as real processes. Used by the tests of
this folder and by bench/nodes.py.

The balancer is Debian's `haproxy`, started in the foreground with a configuration
written to a temporary directory (never the system service). It balances every
request (round robin, HTTP mode), checks `GET /readyz` every 200 ms (a node is out
after two failures), and names the node that answered in an `x-accord-node`
response header, so a caller can tell which node served it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ACCORD = str(Path(sys.executable).parent / "accord")
REDIS_URL = "redis://127.0.0.1:6379"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def haproxy_binary() -> str | None:
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).exists()), None
    )


def redis_reachable(host: str = "127.0.0.1", port: int = 6379) -> bool:
    """A Redis answers PING on this address."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_client_installed() -> bool:
    """The `limits` library's asynchronous Redis driver (the `redis` extra)."""
    try:
        import coredis  # noqa: F401
    except ImportError:
        return False
    return True


def missing_parts() -> str | None:
    """Why a cluster cannot run here, or None."""
    if haproxy_binary() is None:
        return "no load balancer: install Debian's haproxy (apt-get install -y haproxy)"
    if not redis_reachable():
        return "no Redis answers on 127.0.0.1:6379 (the shared rate-limit store)"
    if not redis_client_installed():
        return "the Redis driver of `limits` is missing: pip install 'limits[async-redis]'"
    return None


def haproxy_config(port: int, nodes: list[tuple[str, int]], check: str = "/readyz") -> str:
    servers = "\n".join(f"  server {name} 127.0.0.1:{p} check" for name, p in nodes)
    return f"""global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout check 3s
  retries 2
  option redispatch
frontend accord
  bind 127.0.0.1:{port}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET {check}
  http-check expect status 200
  default-server inter 200ms fall 2 rise 1
  http-response set-header x-accord-node %s
{servers}
"""


@dataclass
class Node:
    name: str
    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """The running nodes and the balancer in front of them (`base`)."""

    nodes: list[Node]
    balancer: asyncio.subprocess.Process
    port: int
    workdir: Path
    killed: set[str] = field(default_factory=set)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, index: int) -> None:
        """SIGKILL one node: no shutdown, its connections simply drop."""
        node = self.nodes[index]
        self.killed.add(node.name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.process.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(
            f"--- {node.name}\n{node.log.read_text(errors='replace')[-3000:]}"
            for node in self.nodes
        )


async def _healthy(
    base: str, process: asyncio.subprocess.Process | None = None, seconds: float = 60.0
) -> None:
    """Until `base` answers `/readyz` 200 (a loaded CI machine may take a while to
    start a node); at once if the process ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=5.0) as probe:
        while loop.time() < deadline:
            if process is not None and process.returncode is not None:
                raise RuntimeError(f"{base}: the process ended ({process.returncode})")
            with contextlib.suppress(httpx.TransportError):
                if (await probe.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{base} did not become ready")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def start_nodes(env: Mapping[str, str], workdir: Path, count: int) -> list[Node]:
    """`count` nodes, one worker each, ready (`/readyz`) when this returns. The
    caller stops them (`stop`), also when this raises."""
    nodes: list[Node] = []
    for i in range(count):
        port, log = free_port(), workdir / f"node{i + 1}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                ACCORD, "serve", "--port", str(port), "--workers", "1",
                cwd=ROOT, env=dict(env), stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        nodes.append(Node(f"node{i + 1}", port, process, log))
    return nodes


async def stop(processes: list[asyncio.subprocess.Process]) -> None:
    await asyncio.gather(*(_stop(p) for p in processes))


async def start_balancer(
    nodes: list[Node], workdir: Path, name: str = "haproxy", check: str = "/readyz"
) -> tuple[asyncio.subprocess.Process, int]:
    """HAProxy in front of `nodes`, answering once every node passed a check of
    `check`: (the process, its port)."""
    haproxy = haproxy_binary()
    if haproxy is None:
        raise RuntimeError("haproxy is not installed")
    port = free_port()
    config = workdir / f"{name}.cfg"
    config.write_text(haproxy_config(port, [(n.name, n.port) for n in nodes], check))
    with (workdir / f"{name}.log").open("wb") as out:
        balancer = await asyncio.create_subprocess_exec(
            haproxy, "-db", "-f", str(config), stdout=out, stderr=out, start_new_session=True
        )
    try:
        await _healthy(f"http://127.0.0.1:{port}", balancer)
        await asyncio.sleep(0.3)  # every node's first check passed
    except BaseException:
        await _stop(balancer)
        raise
    return balancer, port


@contextlib.asynccontextmanager
async def running(
    env: Mapping[str, str], workdir: Path, *, count: int = 2
) -> AsyncIterator[Cluster]:
    """`count` nodes, one worker each, with environment `env` (database, keys, the
    settings under test), and HAProxy in front; everything stopped on exit."""
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    nodes: list[Node] = []
    processes: list[asyncio.subprocess.Process] = []
    try:
        nodes = await start_nodes(env, workdir, count)
        processes = [node.process for node in nodes]
        try:
            await asyncio.gather(*(_healthy(node.base, node.process) for node in nodes))
            balancer, port = await start_balancer(nodes, workdir)
        except BaseException:
            print(Cluster(nodes, processes[0], 0, workdir).logs())  # why it did not start
            raise
        processes.append(balancer)
        yield Cluster(nodes, balancer, port, workdir)
    finally:
        await stop(processes or [node.process for node in nodes])
