"""Delivery speed against a baseline of the same stack. Figures only, not a test.

Starts the service (uvicorn, one worker) on SQLite and, when ACCORD_BENCH_PG_URL
names an empty database, on PostgreSQL (`--workers N` there); creates a realistic
referral (20 fields) through the API with the client library; then, for each
concurrency level, drives `POST /v1/referrals/{id}/deliver` with concurrent clients
for a fixed time, and the baseline endpoint (`POST /v1/_bench/baseline`: token
verification, the principal's organization read, one INSERT) for the same time.
Prints requests per second, p50/p99 latency, the service's CPU time per request
(user + system, from /proc), the ratio deliver/baseline, the load generator's own
CPU time per request, on PostgreSQL the database server's CPU time per request
(`db ms`, deliver/baseline: every postgres process on the machine, so run it on a
quiet server), under each row the tail of both distributions (p90/p95/p98/max),
and the service's peak RSS (with several workers, CPU and RSS add up
all their processes). `--engine` runs one engine's half only. `--against REV`
compares deliveries with another commit's code instead, side by side in the same
run (bench/compare.py).

    .venv/bin/python bench/deliver.py [--seconds 10] [--concurrency 1 8 32] [--client raw]
    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench_db \
        .venv/bin/python bench/deliver.py [--workers 2]
    .venv/bin/python bench/deliver.py --against 6297750 [--cells 3] [--seconds 10]

Targets (issue 6): throughput ratio >= 0.5 at every concurrency; p99 at
concurrency 8 under 50 ms on PostgreSQL. The load generator runs on the same
machine (2 shared cores here), so absolute figures understate a real deployment;
it is a minimal keep-alive HTTP/1.1 client by default, so that it takes as little
of those cores as it can (`--client httpx` for the heavier httpx client that figures
before 2026-12-02 used).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvloop
from accord_client.agreements import countersignature
from accord_client.audit_verify import verify_lines
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import generate_organization_keys
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.auth.dev_tokens import issue_dev_token
from service.auth.principals import Role
from service.cli import CLI_PRINCIPAL
from service.clock import SystemClock
from service.crypto import FileSigner
from service.db import migrate
from service.keyring import CHECKPOINT_KEY
from service.operations.bench_hooks import CREATE_TABLE
from service.organizations import service as org_service
from service.organizations.schemas import OrganizationCreate
from service.sectors import Sector
from service.settings import Settings
from service.storage import make_sessionmaker

ROOT = Path(__file__).resolve().parents[1]
# (requests per second, p50 ms, p99 ms, errors, requests, tail) of one cell of
# load; tail: "p90/p95/p98/max" in ms, printed under each row.
Cell = tuple[float, float, float, int, int, str]
CATEGORIES = ["identity", "contact", "language", "needs", "demographics"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _service_pids(pid: int) -> list[int]:
    """The service process and its worker processes (`--workers N` forks them)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    children.append(int(entry.name))
            except (OSError, IndexError):
                continue  # a process that ended meanwhile
    return [pid, *children]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time the service (with its workers) has used, from /proc."""
    total = 0
    for each in _service_pids(pid):
        try:
            fields = _stat(each)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds() -> float:
    """User plus system CPU time of every PostgreSQL process on this machine (the
    server shares the cores; its backends for the service's pooled connections live
    through a run). Other databases' work counts too: run it on a quiet server."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = _stat(int(entry.name))
        except OSError:
            continue  # a process that ended meanwhile
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _connections_per_worker(pid: int, port: int) -> list[int]:
    """How the clients' open connections to `port` are spread over the service's
    worker processes (uvicorn's workers share one listening socket, and the kernel
    decides which accepts each connection)."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            established.add(f"socket:[{fields[9]}]")
    workers = [
        child
        for child in _service_pids(pid)[1:]
        if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()
    ] or [pid]
    counts = []
    for worker in workers:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{worker}/fd").iterdir()]
        except OSError:
            continue  # a process that ended meanwhile
        counts.append(sum(link in established for link in links))
    return sorted(counts, reverse=True)


async def _spread_drive(load: Coroutine[Any, Any, Cell], pid: int, port: int) -> tuple[Cell, str]:
    """Run one cell of load, and note how its connections were spread over the
    workers a second into it (e.g. "6/2")."""
    task = asyncio.create_task(load)
    await asyncio.sleep(1.0)
    spread = "/".join(map(str, _connections_per_worker(pid, port)))
    return await task, spread


def _own_cpu_seconds() -> float:
    """The load generator's own CPU time (this process): it shares the cores."""
    times = os.times()
    return times.user + times.system


def _rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of the service's processes, added up, from /proc."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for each in _service_pids(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                values[key] += int(value.split()[0])
    return values["VmRSS"], values["VmHWM"]


async def _platform_org(url: str) -> uuid.UUID:
    """The platform operator's organization, created directly (as `accord org create` does)."""
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text(CREATE_TABLE))
        async with make_sessionmaker(engine)() as session:
            org = await org_service.create(
                session,
                principal=CLI_PRINCIPAL,
                data=OrganizationCreate(name="Bench platform", sector=Sector.government),
                clock=SystemClock(),
            )
            await session.commit()
            return org.id
    finally:
        await engine.dispose()


async def _bootstrap(
    base: str, settings: Settings, platform: uuid.UUID
) -> tuple[str, dict[str, str]]:
    """Organizations, collaboration, keys, subject, consent, one 20-field referral."""
    clock = SystemClock()
    admin = issue_dev_token(
        settings, clock=clock, org_id=platform, roles=[Role.platform_admin], sub="bench-admin"
    )
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def post(path: str, body: object, token: str, ok: int = 201) -> dict[str, object]:
            r = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == ok, (path, r.status_code, r.text)
            data: dict[str, object] = r.json()
            return data

        vsp = await post(
            "/v1/organizations", {"name": "Bench VSP", "sector": "victim_services"}, admin
        )
        shelter = await post(
            "/v1/organizations", {"name": "Bench Shelter", "sector": "shelter"}, admin
        )
        now = datetime.now(UTC)
        collab = await post(
            "/v1/collaborations",
            {
                "name": "Bench task force",
                "agreement": {
                    "flows": [
                        {
                            "from_sector": "victim_services",
                            "to_sector": "shelter",
                            "purposes": ["services_referral"],
                            "categories": CATEGORIES,
                        }
                    ],
                    "effective_from": (now - timedelta(days=1)).isoformat(),
                    "document_sha256": "ab" * 32,
                },
                # Members listed in the first version, so they can sign it.
                "members": [vsp["id"], shelter["id"]],
            },
            admin,
        )
        tokens = {
            name: issue_dev_token(
                settings,
                clock=clock,
                org_id=uuid.UUID(str(org["id"])),
                roles=[role],
                sub=f"bench-{name}",
            )
            for name, org, role in (
                ("vsp_admin", vsp, Role.org_admin),
                ("shelter_admin", shelter, Role.org_admin),
                ("vsp", vsp, Role.caseworker),
                ("shelter", shelter, Role.caseworker),
            )
        }
        keys = {}
        for name, org in (("vsp", vsp), ("shelter", shelter)):
            keys[name] = generate_organization_keys(str(org["id"]))
            r = await client.put(
                f"/v1/organizations/{org['id']}/keys",
                json=keys[name].public_registration(),
                headers={"Authorization": f"Bearer {tokens[name + '_admin']}"},
            )
            assert r.status_code == 200, r.text
        # An agreement binds the members that countersigned it (docs/agreements.md):
        # each member's org_admin signs the latest version with its own signing key.
        r = await client.get(
            f"/v1/collaborations/{collab['id']}/agreements",
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert r.status_code == 200, r.text
        latest = r.json()["items"][0]
        for name in ("vsp", "shelter"):
            signing = keys[name].current_signing_key
            body = countersignature(str(collab["id"]), latest, signing.key_id, signing.seed)
            path = f"/v1/collaborations/{collab['id']}/agreements/signatures"
            await post(path, body, tokens[name + "_admin"])
        subject = await post("/v1/subjects", {}, tokens["vsp"])
        consent = await post(
            f"/v1/subjects/{subject['id']}/consents",
            {
                "recipients": [shelter["id"]],
                "purposes": ["services_referral"],
                "categories": CATEGORIES,
                "expires_at": (now + timedelta(days=90)).isoformat(),
                "method": "written",
                "language": "en",
                "evidence_sha256": "cd" * 32,
            },
            tokens["vsp"],
        )
        fields = [
            PlainField(
                name=f"field_{i:02d}",
                category=CATEGORIES[i % len(CATEGORIES)],
                value=f"bench value {i} " + "x" * 40,
            )
            for i in range(20)
        ]
        envelope = seal_envelope(
            fields,
            sender_org=str(vsp["id"]),
            sender_signing_key=keys["vsp"].current_signing_key.seed,
            recipient_org=str(shelter["id"]),
            recipient_encryption_key=keys["shelter"].current_encryption_key.public_key,
            subject_id=str(subject["id"]),
            purpose="services_referral",
            consent_id=str(consent["id"]),
        )
        referral = await post(
            "/v1/referrals",
            {
                "subject_id": subject["id"],
                "recipient_org_id": shelter["id"],
                "consent_id": consent["id"],
                "purpose": "services_referral",
                "services_requested": ["emergency_shelter"],
                "urgency": "urgent",
                "envelope": envelope,
            },
            tokens["vsp"],
        )
        return str(referral["id"]), {"Authorization": f"Bearer {tokens['shelter']}"}


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies) or [0.0]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return pct(0.50), pct(0.99)


def _tail(latencies: list[float]) -> str:
    """p90/p95/p98/max in ms: whether a high p99 is the body of the distribution or a
    few stalls (on this machine, fsync stalls hit every endpoint now and then)."""
    ordered = sorted(latencies) or [0.0]
    marks = [ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.90, 0.95, 0.98)]
    return "/".join(f"{v * 1000:.1f}" for v in [*marks, ordered[-1]])


async def _drive_httpx(
    base: str,
    path: str,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    ok: int,
    sink: list[float] | None = None,
) -> Cell:
    """The same load through httpx (`--client httpx`): what earlier figures used. On
    this 2-core machine httpx spent 2.4-2.7 ms of CPU per request, as much as the
    service, and that competition for the cores showed up in the service's latency."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                r = await client.post(path, headers=headers)
                latencies.append(time.perf_counter() - started)
                if r.status_code != ok:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    if sink is not None:  # each latency in seconds (bench/compare.py pools the cells)
        sink.extend(latencies)
    rate = len(latencies) / elapsed
    return rate, *_percentiles(latencies), errors, len(latencies), _tail(latencies)


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length framing, as uvicorn sends for
    these endpoints) and return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding":
            raise RuntimeError("chunked responses are not expected from these endpoints")
    if length:
        await reader.readexactly(length)
    return status


async def _drive_raw(
    base: str,
    path: str,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    ok: int,
    sink: list[float] | None = None,
) -> Cell:
    """(requests per second, p50 ms, p99 ms, errors, requests, tail) for `seconds` of load.

    Each client is one keep-alive connection writing a prebuilt request and reading
    the whole response: about a tenth of httpx's CPU per request, so the load
    generator, which shares this machine's two cores with the service and the
    database, takes as little from them as it can (wrk and h2load are written in C
    for the same reason). Bounded: it stops at the deadline, and only talks to the
    loopback address the service listens on."""
    url = httpx.URL(base)
    host, port = url.host, url.port
    if host != "127.0.0.1" or port is None:
        raise SystemExit("the benchmark only loads the service it started on the loopback")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 0"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if status != ok:
                    errors += 1
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):  # a reset on close loses nothing
                await writer.wait_closed()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    if sink is not None:  # each latency in seconds (bench/compare.py pools the cells)
        sink.extend(latencies)
    rate = len(latencies) / elapsed
    return rate, *_percentiles(latencies), errors, len(latencies), _tail(latencies)


_CLIENTS = {"raw": _drive_raw, "httpx": _drive_httpx}


async def _verify_log(base: str, settings: Settings, platform: uuid.UUID, delivered: int) -> str:
    """O-verify after the load (SECURITY-TESTS I06): an oversight auditor exports the
    whole log, the offline verifier checks it against the signed checkpoint with the
    service's checkpoint key read from its key directory (not from the service), and
    the disclosure entries must number exactly the deliveries answered 200."""
    clock = SystemClock()
    admin = issue_dev_token(
        settings, clock=clock, org_id=platform, roles=[Role.platform_admin], sub="bench-admin"
    )
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        r = await client.post(
            "/v1/organizations",
            json={"name": "Bench oversight", "sector": "oversight"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert r.status_code == 201, r.text
        auditor = issue_dev_token(
            settings,
            clock=clock,
            org_id=uuid.UUID(r.json()["id"]),
            roles=[Role.auditor],
            sub="bench-auditor",
        )
        exported = await client.get(
            "/v1/audit/export", headers={"Authorization": f"Bearer {auditor}"}
        )
        assert exported.status_code == 200, exported.text
    lines = [line for line in exported.content.split(b"\n") if line]
    checkpoint_key = FileSigner.load(settings.key_dir / CHECKPOINT_KEY).public_key
    log = verify_lines(lines, public_key=checkpoint_key, origin=settings.audit_origin)
    disclosures = sum(json.loads(line)["action"] == "disclosure" for line in lines[:-1])
    if disclosures != delivered:
        raise SystemExit(
            f"audit log: {disclosures} disclosure entries for {delivered} deliveries answered 200"
        )
    return (
        f"audit log verified (O-verify): {log.size} entries, chain and tree match the "
        f"signed checkpoint; {disclosures} disclosure entries = deliveries answered 200"
    )


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that makes Python import `service` and `accord_client` from
    `tree` (a source tree, e.g. a git worktree of another commit) rather than from the
    tree the virtual environment's editable install points at: PYTHONPATH comes before
    site-packages, whose editable finder only answers what the path did not."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "clients")])}


def start_service(
    url: str, workdir: Path, workers: int, tree: Path | None = None, **extra_env: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`accord serve` on a free loopback port, on `url`, with its keys in `workdir`
    and its log in `workdir/service.log` (a pipe nobody reads would fill and stall
    it); (the process, its base URL). Also used by bench/soak.py. With `tree`, the
    service is that tree's code (bench/compare.py): run from it, with `tree_env`."""
    env = {
        **(os.environ if tree is None else tree_env(tree)),
        "ACCORD_DATABASE_URL": url,
        "ACCORD_KEY_DIR": str(workdir / "keys"),
        "ACCORD_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    port = _free_port()
    command = [str(Path(sys.executable).parent / "accord"), "serve", "--port", str(port)]
    if tree is not None:  # service/cli.py has no __main__ guard, so not `-m service.cli`
        command = [sys.executable, "-c", "from service.cli import main; main()", *command[1:]]
    with (workdir / "service.log").open("ab") as log:
        server = subprocess.Popen(
            [*command, "--workers", str(workers)],
            cwd=ROOT if tree is None else tree,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return server, f"http://127.0.0.1:{port}"


async def wait_ready(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as probe:
        for _ in range(300):
            try:
                if (await probe.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"{base}: the service did not become ready (see its service.log)")


async def _run_engine(name: str, url: str, args: argparse.Namespace, workers: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"accord-bench-{name}-"))
    settings = Settings(database_url=url, key_dir=workdir / "keys", test_hooks=True)
    platform = await _platform_org(url)
    server, base = start_service(
        url,
        workdir,
        workers,
        ACCORD_TEST_HOOKS="true",
        ACCORD_STAFF_TOKEN_MAX_LIFETIME_SECONDS="3600",
    )
    port = int(httpx.URL(base).port or 0)
    try:
        await wait_ready(base)
        referral_id, headers = await _bootstrap(base, settings, platform)
        deliver = f"/v1/referrals/{referral_id}/deliver"
        processes = "one worker" if workers == 1 else f"{workers} workers"
        print(f"\n== {name}: 20-field referral, {args.seconds:.0f} s per cell, {processes}")
        print(
            f"{'conc':>4} {'deliver rps':>11} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>6} "
            f"{'base rps':>9} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>6} {'ratio':>6} "
            f"{'client ms':>9} {'db ms':>11}"
            + ("  connections per worker (deliver and baseline)" if workers > 1 else "")
        )
        drive = _CLIENTS[args.client]
        delivered = 0
        for concurrency in args.concurrency:
            cpu, own, db = _cpu_seconds(server.pid), _own_cpu_seconds(), _postgres_cpu_seconds()
            d, d_spread = await _spread_drive(
                drive(base, deliver, headers, concurrency, args.seconds, 200), server.pid, port
            )
            delivered += d[4] - d[3]
            d_cpu, cpu = (_cpu_seconds(server.pid) - cpu) / max(1, d[4]), _cpu_seconds(server.pid)
            d_db, db = (_postgres_cpu_seconds() - db) / max(1, d[4]), _postgres_cpu_seconds()
            b, b_spread = await _spread_drive(
                drive(base, "/v1/_bench/baseline", headers, concurrency, args.seconds, 204),
                server.pid,
                port,
            )
            b_cpu = (_cpu_seconds(server.pid) - cpu) / max(1, b[4])
            b_db = (_postgres_cpu_seconds() - db) / max(1, b[4])
            db_text = f"{d_db * 1e3:>5.1f}/{b_db * 1e3:<5.1f}" if name == "postgresql" else "-"
            client = (_own_cpu_seconds() - own) / max(1, d[4] + b[4])
            errors = f"  errors: deliver {d[3]}, baseline {b[3]}" if d[3] or b[3] else ""
            spread_text = f"  {d_spread} and {b_spread}" if workers > 1 else ""
            print(
                f"{concurrency:>4} {d[0]:>11.0f} {d[1]:>7.1f} {d[2]:>7.1f} {d_cpu * 1e3:>6.1f} "
                f"{b[0]:>9.0f} {b[1]:>7.1f} {b[2]:>7.1f} {b_cpu * 1e3:>6.1f} "
                f"{d[0] / b[0]:>6.2f} {client * 1e3:>9.2f} {db_text:>11}{spread_text}{errors}"
            )
            print(f"{'':>4} p90/p95/p98/max ms: deliver {d[5]}, baseline {b[5]}")
        rss, peak = _rss_kib(server.pid)
        print(f"service RSS now {rss / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB")
        print(await _verify_log(base, settings, platform, delivered))
    finally:
        server.terminate()
        server.wait(timeout=30)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes on PostgreSQL (SQLite is served by one)",
    )
    parser.add_argument(
        "--client",
        choices=sorted(_CLIENTS),
        default="raw",
        help="load generator: raw keep-alive HTTP/1.1 (default) or httpx (earlier figures)",
    )
    parser.add_argument(
        "--engine",
        choices=["both", "sqlite", "postgresql"],
        default="both",
        help="run one engine's half only (PostgreSQL needs ACCORD_BENCH_PG_URL)",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="compare deliveries with REV's code side by side instead (bench/compare.py)",
    )
    parser.add_argument(
        "--cells", type=int, default=3, help="with --against: cells per side (at least 2)"
    )
    args = parser.parse_args()
    if args.against:
        import compare  # bench/compare.py, beside this file

        await compare.main(args)
        return
    if args.engine != "postgresql":
        with tempfile.TemporaryDirectory(prefix="accord-bench-sqlite-") as tmp:
            # SQLite is served by one process (`accord serve` refuses more).
            await _run_engine("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", args, 1)
    pg = os.environ.get("ACCORD_BENCH_PG_URL")
    if args.engine == "sqlite":
        pass
    elif pg:
        await _run_engine("postgresql", pg, args, args.workers)
    else:
        print("\n(PostgreSQL skipped: set ACCORD_BENCH_PG_URL to an empty database)")


if __name__ == "__main__":
    uvloop.run(main())  # the load generator on the same fast loop as the service
