"""Several app nodes on one PostgreSQL (issue 26). Figures only, not a test.

Starts three `accord serve` processes, one worker each, on the empty PostgreSQL
database named by ACCORD_BENCH_PG_URL (and Redis on 127.0.0.1:6379 for the shared
rate-limit store, when one answers), and one HAProxy per cell size in front of the
first one, two and three nodes (tests/scale/cluster.py). Builds a federation through
the API (tests/scale/federation.py: signed agreement, registered keys) and one
20-field referral; then, in rounds that alternate the cells (1, 2, 3 nodes, 1, 2,
3, ...), drives `POST /v1/referrals/{id}/deliver` through the balancer with
bench/deliver.py's raw keep-alive client for a fixed time. Prints per cell:
requests per second, p50/p99, each node's CPU time per request it served
(user + system from /proc/PID/stat, before and after), the nodes' sum,
PostgreSQL's CPU per request (its backends serving this database, found by their
process titles, and apart the auxiliary processes every database shares: WAL
writer, checkpointer, background writer), the balancer's and the load generator's,
and the ratios against one node. Then the model of docs/capacity.md: how many app-node cores one
PostgreSQL core keeps busy, from the measured CPU per request. Verifies the log
afterwards (every delivery answered 200 has its disclosure entry).

    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench_nodes \\
        .venv/bin/python bench/nodes.py [--seconds 10] [--rounds 2] [--concurrency 16]

This machine has two cores shared by the nodes, PostgreSQL, HAProxy and the load
generator: the throughput ratio cannot show what separate machines would, which is
why the CPU per request is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import deliver  # bench/deliver.py: the load generator and /proc readers
import uvloop
from accord_client.envelope import PlainField, seal_envelope
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from service.db import migrate
from service.keyring import load_keyring
from service.settings import Environment, Settings
from tests.scale import cluster
from tests.scale.federation import CATEGORIES, PURPOSE, Federation, build

FIELDS = 20
# The balancer's health check. Not `/readyz`: under load it answers 503 now and then
# (service/audit/readiness.py reads the head and the last entry in two statements,
# and an append commits between them), and a node taken out of a one-node pool
# turns every request into the balancer's 503 for the checks it takes to return.
CHECK = "/healthz"


@dataclass
class Stack:
    """Three nodes on one database, a balancer per cell size, and the federation."""

    url: str
    workdir: Path
    nodes: list[cluster.Node] = field(default_factory=list)
    balancers: dict[int, tuple[asyncio.subprocess.Process, int]] = field(default_factory=dict)
    fed: Federation | None = None

    def base(self, count: int) -> str:
        return f"http://127.0.0.1:{self.balancers[count][1]}"

    async def close(self) -> None:
        processes = [n.process for n in self.nodes]
        await cluster.stop(processes + [p for p, _ in self.balancers.values()])


async def start_stack(url: str, count: int = 3) -> Stack:
    """Migrate the empty database, start `count` nodes and a balancer for each prefix
    of them (1 .. count nodes), and build the federation through the API."""
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    stack = Stack(url, Path(tempfile.mkdtemp(prefix="accord-bench-nodes-")))
    settings = Settings(
        environment=Environment.test,
        database_url=url,
        key_dir=stack.workdir / "keys",
        auto_migrate=False,
    )
    load_keyring(settings, create=True)
    store = cluster.REDIS_URL
    if not (cluster.redis_reachable() and cluster.redis_client_installed()):
        store = "memory://"
        print("(no Redis here: each node counts its own rate limits; deliveries have none)")
    env = {
        **os.environ,
        "ACCORD_ENVIRONMENT": "test",
        "ACCORD_DATABASE_URL": url,
        "ACCORD_KEY_DIR": str(settings.key_dir),
        "ACCORD_AUTO_MIGRATE": "false",
        "ACCORD_LOG_LEVEL": "WARNING",
        "ACCORD_RATE_LIMIT_STORAGE_URL": store,
    }
    try:
        stack.nodes = await cluster.start_nodes(env, stack.workdir, count)
        await asyncio.gather(*(deliver.wait_ready(node.base) for node in stack.nodes))
        for size in range(1, count + 1):
            stack.balancers[size] = await cluster.start_balancer(
                stack.nodes[:size], stack.workdir, f"haproxy{size}", check=CHECK
            )
        stack.fed = await build(settings, stack.base(count))
    except BaseException:
        await stack.close()
        raise
    return stack


async def delivery_path(fed: Federation, fields: int = FIELDS) -> str:
    """A referral of `fields` fields, sent: the path that delivers it."""
    subject = await fed.subject()
    consent = await fed.consent(subject)
    plain = [
        PlainField(
            name=f"field_{i:02d}",
            category=CATEGORIES[i % len(CATEGORIES)],
            value=f"bench value {i} " + "x" * 40,
        )
        for i in range(fields)
    ]
    envelope = seal_envelope(
        plain,
        sender_org=fed.orgs["vsp"],
        sender_signing_key=fed.keys["vsp"].current_signing_key.seed,
        recipient_org=fed.orgs["shelter"],
        recipient_encryption_key=fed.keys["shelter"].current_encryption_key.public_key,
        subject_id=subject,
        purpose=PURPOSE,
        consent_id=consent,
    )
    body = {**fed.referral_body(subject, consent), "envelope": envelope}
    referral = await fed.post("/v1/referrals", body, "vsp")
    return f"/v1/referrals/{referral['id']}/deliver"


AUXILIARY = ("walwriter", "checkpointer", "background writer", "autovacuum launcher")


def postgres_cpu(database: str) -> tuple[float, float]:
    """CPU seconds (user + system) of PostgreSQL's backends serving `database` (their
    process titles name it: other databases on a shared server do not count), and of
    the server's auxiliary processes that every database shares (WAL writer,
    checkpointer, background writer)."""
    mine = shared = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            seconds = _cpu(int(entry.name))
        except OSError:
            continue  # a process that ended meanwhile
        if f" {database} " in title:
            mine += seconds
        elif any(name in title for name in AUXILIARY):
            shared += seconds
    return mine, shared


def _cpu(pid: int) -> float:
    fields = deliver._stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Cell:
    nodes: int
    rate: float
    p50: float
    p99: float
    errors: int
    requests: int
    node_ms: list[float]  # each node's CPU ms per request of the cell
    db_ms: float
    aux_ms: float
    lb_ms: float
    client_ms: float

    @property
    def app_ms(self) -> float:
        return sum(self.node_ms)


async def run_cell(stack: Stack, size: int, path: str, concurrency: int, seconds: float) -> Cell:
    balancer = stack.balancers[size][0]
    pids = [node.process.pid for node in stack.nodes[:size]]
    assert stack.fed is not None
    headers = stack.fed.headers("shelter")
    nodes = [_cpu(p) for p in pids]
    database = make_url(stack.url).database or ""
    (db, aux), lb, own = postgres_cpu(database), _cpu(balancer.pid), deliver._own_cpu_seconds()
    rate, p50, p99, errors, requests, _ = await deliver._drive_raw(
        stack.base(size), path, headers, concurrency, seconds, 200
    )
    per = 1e3 / max(1, requests)
    db_after, aux_after = postgres_cpu(database)
    return Cell(
        nodes=size,
        rate=rate,
        p50=p50,
        p99=p99,
        errors=errors,
        requests=requests,
        node_ms=[(_cpu(p) - before) * per for p, before in zip(pids, nodes, strict=True)],
        db_ms=(db_after - db) * per,
        aux_ms=(aux_after - aux) * per,
        lb_ms=(_cpu(balancer.pid) - lb) * per,
        client_ms=(deliver._own_cpu_seconds() - own) * per,
    )


def _median(cells: list[Cell], pick: str) -> float:
    return statistics.median(float(getattr(c, pick)) for c in cells)


def report(cells: list[Cell]) -> None:
    print(
        f"{'nodes':>5} {'rps':>6} {'p50 ms':>7} {'p99 ms':>7} {'node cpu ms/req':>22} "
        f"{'app':>5} {'pg':>5} {'pg aux':>6} {'lb':>5} {'client':>6} {'rps/1':>6} {'app/1':>6} "
        f"{'pg/1':>6}"
    )
    one = [c for c in cells if c.nodes == 1]
    for cell in cells:
        each = "/".join(f"{ms:.2f}" for ms in cell.node_ms)
        print(
            f"{cell.nodes:>5} {cell.rate:>6.0f} {cell.p50:>7.1f} {cell.p99:>7.1f} {each:>22} "
            f"{cell.app_ms:>5.2f} {cell.db_ms:>5.2f} {cell.aux_ms:>6.2f} {cell.lb_ms:>5.2f} "
            f"{cell.client_ms:>6.2f} "
            f"{cell.rate / _median(one, 'rate'):>6.2f} "
            f"{cell.app_ms / _median(one, 'app_ms'):>6.2f} "
            f"{cell.db_ms / _median(one, 'db_ms'):>6.2f}"
            + (f"  errors {cell.errors}" if cell.errors else "")
        )
    sizes = sorted({c.nodes for c in cells})
    print("\nmedians per cell size:")
    for size in sizes:
        mine = [c for c in cells if c.nodes == size]
        rate, app, db = (_median(mine, k) for k in ("rate", "app_ms", "db_ms"))
        print(
            f"  {size} node(s): {rate:.0f} deliveries/s ({rate / _median(one, 'rate'):.2f}x one "
            f"node), app CPU {app:.2f} ms/req, PostgreSQL CPU {db:.2f} ms/req"
        )
    app, db = _median(cells, "app_ms"), _median(cells, "db_ms")
    print(
        f"\nmodel (docs/capacity.md): one app core serves 1000/{app:.2f} = {1000 / app:.0f} "
        f"deliveries/s; one PostgreSQL core serves 1000/{db:.2f} = {1000 / db:.0f}; so one "
        f"PostgreSQL core keeps {app / db:.1f} app-node cores busy"
    )


async def verify(stack: Stack, delivered: int) -> None:
    assert stack.fed is not None
    lines = await stack.fed.export()
    log = stack.fed.verify(lines)
    found = sum(b'"action":"disclosure"' in line for line in lines[:-1])
    print(
        f"audit log verified (client verifier, key from the key directory): {log.size} "
        f"entries; {found} disclosure entries for {delivered} deliveries answered 200"
    )
    if found != delivered:
        raise SystemExit("disclosure entries do not match the deliveries answered 200")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("ACCORD_BENCH_PG_URL")
    if not url:
        raise SystemExit("set ACCORD_BENCH_PG_URL to an empty PostgreSQL database")
    if cluster.haproxy_binary() is None:
        raise SystemExit("no load balancer: install Debian's haproxy (apt-get install -y haproxy)")
    stack = await start_stack(url, args.nodes)
    try:
        assert stack.fed is not None
        path = await delivery_path(stack.fed)
        print(
            f"== {FIELDS}-field referral delivered through HAProxy, {args.concurrency} clients, "
            f"{args.seconds:.0f} s per cell, each node one worker, {args.rounds} rounds"
        )
        cells = []
        for _ in range(args.rounds):
            for size in range(1, args.nodes + 1):
                cells.append(await run_cell(stack, size, path, args.concurrency, args.seconds))
        report(cells)
        delivered = sum(c.requests - c.errors for c in cells)
        await verify(stack, delivered)
    finally:
        await stack.close()
        print(f"(node and balancer logs in {stack.workdir})")


if __name__ == "__main__":
    uvloop.run(main())
