"""Webhook speed (issue 19): events per second to a local receiver, commit-to-receipt
latency at a steady load of deliveries, and the delivery benchmark's throughput with
the dispatcher running against without it. Figures only, not a test.

Per engine (SQLite always; PostgreSQL when ACCORD_BENCH_PG_URL names an empty
database, whose server also gets a second database for the service without a
dispatcher, dropped at the end) it starts two services (`accord serve`, as
bench/deliver.py does): "on" with the dispatcher inside `accord serve` (the
default) and "off" with ACCORD_WEBHOOK_DISPATCH_IN_SERVE=false. Both get the same
organizations, a 20-field referral to deliver again and again (the delivery
benchmark's load), a stock of fresh 5-field referrals whose FIRST delivery emits
`referral.delivered`, and one webhook endpoint of the sender's organization,
subscribed to that type, at a receiver this script runs in a process of its own
(uvicorn, `--receiver PORT`): it checks every request's `v1` signature with the
independent `standardwebhooks` package, refuses a bad one (400), and records the
event's id, object and time of receipt. Each first delivery is one event, one
webhook request. Measured on the "on" service:

- burst: N first deliveries, 8 at a time, as fast as they go; events per second
  = N / (receipt of the last - start of the first), and how long the last took to
  arrive after the last delivery returned;
- drain: the endpoint paused, N first deliveries, then resumed; events per second
  = N / (last receipt - resume): the dispatcher alone, one endpoint (the dispatcher
  sends one request at a time per endpoint, so this is its per-endpoint ceiling),
  and the service's CPU ms per event meanwhile (the dispatcher's cost, which the
  machine's load changes far less than it changes the rate);
- steady: first deliveries at `--rate` per second (50) for `--steady-seconds`,
  started on a fixed schedule whatever the answers; commit-to-receipt latency p50,
  p99, max, measured from the event's `timestamp` (the change's time, taken inside
  its transaction just before the commit: an upper bound) and from the moment the
  delivery's API call returned (after the commit: a lower bound).

Then the throughput cells: `POST /v1/referrals/{id}/deliver` on the 20-field referral
at `--concurrency` (bench/deliver.py's raw keep-alive client) for `--seconds`, cells
alternating off, on, off, on ... (`--cells` each), with first deliveries at
`--rate` per second alongside in every cell (so the "on" service's dispatcher sends
about that many webhooks during its cells while the "off" service's pile up). After
each "on" cell the run waits until the receiver has that cell's events, so no cell
pays for the one before. Prints deliveries/s, p50/p99, the service's CPU ms per
delivery (`cpu ms`: with the dispatcher's own process on PostgreSQL; `api ms`: the
API process alone), the ratio on/off, and the latency of the side events during the
"on" cells. With `--pin` the API process runs on core 0 and the receiver and the
dispatcher's process on the other cores (this script and PostgreSQL unpinned): the
dispatcher and the receiver off the API's core, as in a deployment, where the
receiver is another organization's machine.

    .venv/bin/python bench/events.py [--quick] [--engine sqlite]
    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench_events \\
        .venv/bin/python bench/events.py [--quick]

Targets (issue 19): commit-to-receipt p99 under 1 s at 50 deliveries/s; delivery
throughput with dispatching at least 0.9 of without. The load generator, the
receiver, the services and PostgreSQL share this machine's cores. The exit status
says nothing about speed; the last lines say whether the targets were met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import deliver  # bench/deliver.py, beside this file
import httpx
import uvloop
from accord_client.agreements import countersignature
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import generate_organization_keys
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from service.auth.dev_tokens import issue_dev_token
from service.auth.principals import Role
from service.clock import SystemClock
from service.settings import Settings

CATEGORIES = deliver.CATEGORIES
EVENT_TYPES = ["referral.delivered"]
RECEIPT_TIMEOUT = 60.0  # seconds to wait for the receiver to have every event
IN_FLIGHT = 16  # paced first deliveries waiting for their answer at most
# Fields of each referral whose first delivery emits an event (sealing 20 fields
# costs this load generator about 50 ms a referral on a busy 2-core machine).
FRESH_FIELDS = 5


# --pin: the API worker on the first core; the receiver and the dispatcher's own
# process (PostgreSQL) on the others, as they would run on other cores or machines in
# a deployment. This script and PostgreSQL are not pinned.
PINNED = False
API_CORE = {0}
OTHER_CORES = set(range(1, os.cpu_count() or 2)) or {0}


def _pin(server: int) -> None:
    """The service's API process on API_CORE, its children (the dispatcher) elsewhere."""
    os.sched_setaffinity(server, API_CORE)
    for child in deliver._service_pids(server)[1:]:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(child, OTHER_CORES)


# --- the receiver (its own process) --------------------------------------------------


def _receiver(port: int) -> None:
    """An ASGI app under uvicorn: POST /secret/NAME sets an endpoint's secret, POST
    /hook/NAME receives a webhook, GET /records?after=I lists what was received."""
    import uvicorn
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    hooks: dict[str, Webhook] = {}
    records: list[list[Any]] = []
    seen: set[str] = set()
    counts = {"bad": 0, "duplicates": 0}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        at = time.time()
        method, path = scope["method"], scope["path"]
        status, answer = 204, b""
        if method == "POST" and path.startswith("/hook/"):
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            try:
                hooks[path[6:]].verify(body, headers)
            except (KeyError, WebhookVerificationError):
                counts["bad"] += 1
                status = 400
            else:
                event = json.loads(body)
                webhook_id = headers["webhook-id"]
                if webhook_id in seen:
                    counts["duplicates"] += 1
                seen.add(webhook_id)
                records.append([path[6:], event["object_id"], event["timestamp"], at])
        elif method == "POST" and path.startswith("/secret/"):
            hooks[path[8:]] = Webhook(body.decode())
        elif method == "GET" and path == "/records":
            after = int(scope["query_string"].decode().partition("=")[2] or 0)
            answer = json.dumps({"records": records[after:], **counts}).encode()
            status = 200
        else:
            status = 404
        length = str(len(answer)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-length", length)],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


class Receipts:
    """The driver's view of the receiver: what arrived, by referral id."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.client = httpx.AsyncClient(base_url=base, timeout=30)
        self.seen = 0
        self.by_object: dict[str, tuple[str, float]] = {}  # referral -> (event time, receipt)
        self.bad = self.duplicates = 0

    async def poll(self) -> None:
        data = (await self.client.get("/records", params={"after": self.seen})).json()
        self.seen += len(data["records"])
        for _name, object_id, stamp, at in data["records"]:
            self.by_object.setdefault(object_id, (stamp, at))
        self.bad, self.duplicates = data["bad"], data["duplicates"]

    async def wait_for(self, objects: list[str]) -> int:
        """Wait until every object's event has arrived (at most RECEIPT_TIMEOUT); how
        many are missing."""
        deadline = time.monotonic() + RECEIPT_TIMEOUT
        while True:
            await self.poll()
            missing = sum(o not in self.by_object for o in objects)
            if not missing or time.monotonic() > deadline:
                return missing
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _receiver_process(workdir: Path) -> AsyncIterator[Receipts]:
    port = deliver._free_port()
    with (workdir / "receiver.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - once, before anything is measured
            [sys.executable, __file__, "--receiver", str(port)], stdout=log, stderr=log
        )
    if PINNED:
        os.sched_setaffinity(process.pid, OTHER_CORES)
    receipts = Receipts(f"http://127.0.0.1:{port}")
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                await receipts.poll()
                break
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the receiver did not start (see receiver.log)")
        yield receipts
    finally:
        await receipts.client.aclose()
        process.terminate()
        process.wait(timeout=10)


# --- one service, seeded ----------------------------------------------------------------


@dataclass
class Stack:
    """One service and what the run knows about it."""

    name: str  # "on" or "off": the dispatcher inside `accord serve` or not
    url: str
    workdir: Path
    server: subprocess.Popen[bytes] | None = None
    base: str = ""
    client: httpx.AsyncClient | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    orgs: dict[str, str] = field(default_factory=dict)
    keys: dict[str, Any] = field(default_factory=dict)
    subject: str = ""
    consent: str = ""
    repeat: str = ""  # the 20-field referral delivered again and again
    endpoint: str = ""
    fresh: list[str] = field(default_factory=list)  # referrals never delivered yet
    failed: dict[int | str, int] = field(default_factory=dict)  # first deliveries not 200

    async def call(self, method: str, path: str, token: str, body: object = None) -> Any:
        assert self.client is not None
        r = await self.client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {self.tokens[token]}"}
        )
        if r.status_code >= 300:
            raise SystemExit(f"{self.name}: {method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None


async def _seed(stack: Stack, platform: uuid.UUID, receipts: Receipts) -> None:
    """Organizations, collaboration, keys, subject, consent, the repeated referral,
    and the sender's webhook endpoint at the receiver (its secret handed over)."""
    settings = Settings(database_url=stack.url, key_dir=stack.workdir / "keys")
    clock = SystemClock()
    stack.tokens["platform"] = issue_dev_token(
        settings, clock=clock, org_id=platform, roles=[Role.platform_admin], sub="bench-admin"
    )
    for name, sector in (("vsp", "victim_services"), ("shelter", "shelter")):
        org = await stack.call(
            "POST", "/v1/organizations", "platform", {"name": name, "sector": sector}
        )
        stack.orgs[name] = org["id"]
    now = datetime.now(UTC)
    flows = [
        {
            "from_sector": "victim_services",
            "to_sector": "shelter",
            "purposes": ["services_referral"],
            "categories": CATEGORIES,
        }
    ]
    agreement = {
        "flows": flows,
        "effective_from": (now - timedelta(days=1)).isoformat(),
        "document_sha256": "ab" * 32,
    }
    # The members are listed in the first version, so that they can sign it.
    body = {"name": "Bench", "agreement": agreement, "members": list(stack.orgs.values())}
    collab = await stack.call("POST", "/v1/collaborations", "platform", body)
    for name, org_id in stack.orgs.items():
        for role in (Role.org_admin, Role.caseworker):
            stack.tokens[f"{name}_{role.value}"] = issue_dev_token(
                settings, clock=clock, org_id=uuid.UUID(org_id), roles=[role], sub=f"b-{name}"
            )
        stack.keys[name] = generate_organization_keys(org_id)
        await stack.call(
            "PUT",
            f"/v1/organizations/{org_id}/keys",
            f"{name}_org_admin",
            stack.keys[name].public_registration(),
        )
    # An agreement binds the members that countersigned it (docs/agreements.md):
    # each member's org_admin signs the latest version with its own signing key.
    history = await stack.call("GET", f"/v1/collaborations/{collab['id']}/agreements", "platform")
    for name in stack.orgs:
        signing = stack.keys[name].current_signing_key
        signature = countersignature(
            collab["id"], history["items"][0], signing.key_id, signing.seed
        )
        path = f"/v1/collaborations/{collab['id']}/agreements/signatures"
        await stack.call("POST", path, f"{name}_org_admin", signature)
    stack.subject = (await stack.call("POST", "/v1/subjects", "vsp_caseworker", {}))["id"]
    consent = {
        "recipients": [stack.orgs["shelter"]],
        "purposes": ["services_referral"],
        "categories": CATEGORIES,
        "expires_at": (now + timedelta(days=90)).isoformat(),
        "method": "written",
        "language": "en",
        "evidence_sha256": "cd" * 32,
    }
    path = f"/v1/subjects/{stack.subject}/consents"
    stack.consent = (await stack.call("POST", path, "vsp_caseworker", consent))["id"]
    stack.repeat = (await _referrals(stack, 1, 1))[0]
    endpoint = await stack.call(
        "POST",
        f"/v1/organizations/{stack.orgs['vsp']}/webhooks",
        "vsp_org_admin",
        {"url": f"{receipts.base}/hook/{stack.name}", "event_types": EVENT_TYPES},
    )
    stack.endpoint = endpoint["id"]
    await receipts.client.post(f"/secret/{stack.name}", content=endpoint["secret"])


async def _referrals(stack: Stack, count: int, concurrency: int, size: int = 20) -> list[str]:
    """`count` fresh referrals of `size` fields from the VSP to the shelter."""
    made: list[str] = []

    async def one() -> None:
        fields = [
            PlainField(name=f"field_{i:02d}", category=CATEGORIES[i % 5], value=f"v{i} " + "x" * 40)
            for i in range(size)
        ]
        envelope = seal_envelope(
            fields,
            sender_org=stack.orgs["vsp"],
            sender_signing_key=stack.keys["vsp"].current_signing_key.seed,
            recipient_org=stack.orgs["shelter"],
            recipient_encryption_key=stack.keys["shelter"].current_encryption_key.public_key,
            subject_id=stack.subject,
            purpose="services_referral",
            consent_id=stack.consent,
        )
        body = {
            "subject_id": stack.subject,
            "recipient_org_id": stack.orgs["shelter"],
            "consent_id": stack.consent,
            "purpose": "services_referral",
            "services_requested": ["emergency_shelter"],
            "urgency": "urgent",
            "envelope": envelope,
        }
        made.append((await stack.call("POST", "/v1/referrals", "vsp_caseworker", body))["id"])

    async def worker(share: int) -> None:
        for _ in range(share):
            await one()

    await asyncio.gather(
        *(worker(count // concurrency + (i < count % concurrency)) for i in range(concurrency))
    )
    return made


async def _first_delivery(stack: Stack, returned: dict[str, float]) -> None:
    """Deliver a fresh referral (its first delivery emits `referral.delivered`)."""
    assert stack.client is not None
    referral = stack.fresh.pop()
    token = stack.tokens["shelter_caseworker"]
    try:
        r = await stack.client.post(
            f"/v1/referrals/{referral}/deliver", headers={"Authorization": f"Bearer {token}"}
        )
    except httpx.HTTPError as error:
        name = type(error).__name__
        stack.failed[name] = stack.failed.get(name, 0) + 1
        return
    if r.status_code == 200:
        returned[referral] = time.time()
    else:  # e.g. 503 when SQLite's busy timeout ran out: rolled back, no event
        stack.failed[r.status_code] = stack.failed.get(r.status_code, 0) + 1


async def _paced(rate: float, count: int, step: Callable[[], Awaitable[None]]) -> float:
    """Start `step` `count` times at `rate` per second on a fixed schedule, whatever
    the answers (at most `IN_FLIGHT` at once: a service that falls behind shows as a
    lower achieved rate, not as a pile of requests timing out); the achieved rate."""
    tasks = []
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def bounded() -> None:
        async with slots:
            await step()

    began = time.perf_counter()
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        while slots.locked():  # noqa: ASYNC110 - the schedule slips, and it shows
            await asyncio.sleep(0.001)
        tasks.append(asyncio.create_task(bounded()))
    started = time.perf_counter() - began
    await asyncio.gather(*tasks)
    return count / started if started else float("nan")


def _latencies(receipts: Receipts, returned: dict[str, float]) -> tuple[list[float], list[float]]:
    """(from the event's timestamp, from the API call's return) to receipt, seconds."""
    from_event, from_return = [], []
    for referral, back in returned.items():
        if referral in receipts.by_object:
            stamp, at = receipts.by_object[referral]
            from_event.append(at - datetime.fromisoformat(stamp).timestamp())
            from_return.append(at - back)
    return from_event, from_return


def _ms(values: list[float]) -> str:
    if not values:
        return "none"
    p50, p99 = deliver._percentiles(values)
    top = max(values, default=0.0) * 1000
    return f"p50 {p50:6.1f}  p99 {p99:6.1f}  max {top:6.1f} ms"


# --- the measurements ---------------------------------------------------------------------


async def _burst(stack: Stack, receipts: Receipts, count: int) -> tuple[float, float]:
    """(events/s received, seconds from the last delivery's return to its receipt)."""
    returned: dict[str, float] = {}
    began = time.time()

    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await _first_delivery(stack, returned)

    await asyncio.gather(*(worker() for _ in range(8)))
    missing = await receipts.wait_for(list(returned))
    last = max(receipts.by_object[r][1] for r in returned if r in receipts.by_object)
    if missing:
        print(f"   burst: {missing} events not received within {RECEIPT_TIMEOUT:.0f} s")
    return len(returned) / (last - began), last - max(returned.values())


async def _drain(stack: Stack, receipts: Receipts, count: int) -> tuple[float, float]:
    """Events/s sent from a backlog of `count` to one endpoint: the dispatcher alone;
    and the service's CPU ms per event meanwhile (time the machine's load hardly
    changes, unlike the rate)."""
    assert stack.server is not None
    path = f"/v1/organizations/{stack.orgs['vsp']}/webhooks/{stack.endpoint}"
    await stack.call("PATCH", path, "vsp_org_admin", {"paused": True})
    returned: dict[str, float] = {}
    for _ in range(count):
        await _first_delivery(stack, returned)
    await asyncio.sleep(1.0)  # the dispatcher idle, nothing claimable
    cpu = deliver._cpu_seconds(stack.server.pid)
    began = time.time()
    await stack.call("PATCH", path, "vsp_org_admin", {"paused": False})
    missing = await receipts.wait_for(list(returned))
    cpu = deliver._cpu_seconds(stack.server.pid) - cpu
    if missing:
        print(f"   drain: {missing} events not received within {RECEIPT_TIMEOUT:.0f} s")
    last = max(receipts.by_object[r][1] for r in returned if r in receipts.by_object)
    sent = len(returned) - missing
    return sent / (last - began), cpu / max(1, sent) * 1000


async def _steady(
    stack: Stack, receipts: Receipts, rate: float, seconds: float
) -> tuple[float, list[float], list[float], int]:
    returned: dict[str, float] = {}
    achieved = await _paced(rate, int(rate * seconds), lambda: _first_delivery(stack, returned))
    missing = await receipts.wait_for(list(returned))
    return achieved, *_latencies(receipts, returned), missing


@dataclass
class Pool:
    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    cpu: float = 0.0
    api_cpu: float = 0.0  # the API process alone (without the dispatcher's process)
    side_rates: list[float] = field(default_factory=list)
    side_returned: dict[str, float] = field(default_factory=dict)


async def _cell(stack: Stack, pool: Pool, args: argparse.Namespace, receipts: Receipts) -> None:
    """One cell of repeated deliveries, with first deliveries at `--rate` alongside."""
    assert stack.server is not None
    headers = {"Authorization": f"Bearer {stack.tokens['shelter_caseworker']}"}
    path = f"/v1/referrals/{stack.repeat}/deliver"
    cpu = deliver._cpu_seconds(stack.server.pid)
    api_cpu = _own_cpu_seconds(stack.server.pid)
    returned: dict[str, float] = {}
    side = asyncio.create_task(
        _paced(
            args.side_rate,
            int(args.side_rate * args.seconds),
            lambda: _first_delivery(stack, returned),
        )
    )
    cell = await deliver._drive_raw(
        stack.base, path, headers, args.concurrency, args.seconds, 200, pool.latencies
    )
    pool.side_rates.append(await side)
    pool.cpu += deliver._cpu_seconds(stack.server.pid) - cpu
    pool.api_cpu += _own_cpu_seconds(stack.server.pid) - api_cpu
    pool.rates.append(cell[0])
    pool.requests += cell[4]
    pool.seconds += cell[4] / cell[0] if cell[0] else args.seconds
    pool.errors += cell[3]
    pool.side_returned.update(returned)
    if stack.name == "on":  # the next cell must not pay for this one's backlog
        missing = await receipts.wait_for(list(returned))
        if missing:
            print(f"   cell: {missing} side events not received within {RECEIPT_TIMEOUT:.0f} s")


def _own_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of this one process (not its children)."""
    fields = deliver._stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def _pg_off_database(server: str) -> AsyncIterator[str]:
    """A fresh database for the "off" service beside the named one, dropped afterwards."""
    url = make_url(server)
    name = f"bench_events_off_{os.getpid()}"
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _run_engine(engine: str, urls: dict[str, str], args: argparse.Namespace) -> list[str]:
    workdir = Path(tempfile.mkdtemp(prefix=f"accord-bench-events-{engine}-"))
    stacks = {name: Stack(name, url, workdir / name) for name, url in urls.items()}
    workers = 1 if engine == "sqlite" else args.workers
    per_cell = int(args.side_rate * args.seconds)
    warm = int(args.rate) + 20  # a warm-up second, and some to spare
    needed = {
        "on": 2 * args.burst + int(args.rate * args.steady_seconds) + per_cell * args.cells,
        "off": per_cell * args.cells,
    }
    needed = {name: count + 2 * warm for name, count in needed.items()}
    summary: list[str] = []
    async with _receiver_process(workdir) as receipts:
        try:
            for stack in stacks.values():
                stack.workdir.mkdir(parents=True)
                platform = await deliver._platform_org(stack.url)
                stack.server, stack.base = deliver.start_service(
                    stack.url,
                    stack.workdir,
                    workers,
                    ACCORD_STAFF_TOKEN_MAX_LIFETIME_SECONDS="3600",
                    ACCORD_WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
                    ACCORD_WEBHOOK_DISPATCH_IN_SERVE="true" if stack.name == "on" else "false",
                )
                await deliver.wait_ready(stack.base)
                if PINNED:
                    _pin(stack.server.pid)
                stack.client = httpx.AsyncClient(base_url=stack.base, timeout=60)
                await _seed(stack, platform, receipts)
                began = time.perf_counter()
                stack.fresh = await _referrals(stack, needed[stack.name], 4, FRESH_FIELDS)
                made = len(stack.fresh) / (time.perf_counter() - began)
                print(f"   {engine} {stack.name}: {len(stack.fresh)} referrals made ({made:.0f}/s)")
            on = stacks["on"]
            processes = "one worker" if workers == 1 else f"{workers} workers"
            print(f"\n== {engine}: {processes}; one endpoint")
            # Warm-up (not counted): connections, caches, the dispatcher's first pass.
            await _steady(on, receipts, args.rate, 1.0)
            burst, tail = await _burst(on, receipts, args.burst)
            print(
                f"burst: {args.burst} first deliveries, 8 at a time: {burst:.0f} events/s "
                f"received; the last {tail * 1000:.0f} ms after its delivery returned"
            )
            drain, drain_cpu = await _drain(on, receipts, args.burst)
            print(
                f"drain: a backlog of {args.burst} to one endpoint: {drain:.0f} events/s, "
                f"{drain_cpu:.2f} ms of service CPU per event"
            )
            achieved, from_event, from_return, missing = await _steady(
                on, receipts, args.rate, args.steady_seconds
            )
            print(
                f"steady: {achieved:.1f} deliveries/s for {args.steady_seconds:g} s, "
                f"{len(from_event)} events received, {missing} missing"
            )
            print(f"   commit-to-receipt from the event's timestamp:  {_ms(from_event)}")
            print(f"   commit-to-receipt from the API call's return:  {_ms(from_return)}")
            pools = {name: Pool() for name in stacks}
            for name in stacks:  # warm-up of the delivery load, not counted
                warm_up = argparse.Namespace(**{**vars(args), "seconds": 1.0})
                await _cell(stacks[name], Pool(), warm_up, receipts)
            for _ in range(args.cells):
                for name in ("off", "on"):
                    await _cell(stacks[name], pools[name], args, receipts)
            print(
                f"\ndeliveries of one 20-field referral at concurrency {args.concurrency}, "
                f"{args.cells} cells of {args.seconds:g} s per side, alternating off/on, "
                f"first deliveries at {args.side_rate:g}/s alongside"
            )
            print(
                f"{'dispatcher':<10} {'deliv/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'cpu ms':>7} "
                f"{'api ms':>7} {'errors':>6}  each cell's deliveries/s; side load/s"
            )
            for name in ("off", "on"):
                pool = pools[name]
                p50, p99 = deliver._percentiles(pool.latencies)
                rate = pool.requests / pool.seconds
                cells = " ".join(f"{r:.0f}" for r in pool.rates)
                sides = " ".join(f"{r:.1f}" for r in pool.side_rates)
                print(
                    f"{name:<10} {rate:>8.1f} {p50:>7.1f} {p99:>7.1f} "
                    f"{pool.cpu / max(1, pool.requests) * 1e3:>7.2f} "
                    f"{pool.api_cpu / max(1, pool.requests) * 1e3:>7.2f} {pool.errors:>6}  "
                    f"{cells}; {sides}"
                )
            off_pool, on_pool = pools["off"], pools["on"]
            ratio = (on_pool.requests / on_pool.seconds) / (off_pool.requests / off_pool.seconds)
            p99_ratio = (
                deliver._percentiles(on_pool.latencies)[1]
                / deliver._percentiles(off_pool.latencies)[1]
            )
            side_event, _ = _latencies(receipts, on_pool.side_returned)
            print(f"on/off: throughput {ratio:.3f}, p99 {p99_ratio:.3f}")
            print(f"   side events during the on cells, commit-to-receipt: {_ms(side_event)}")
            print(
                f"receiver: {receipts.bad} bad signatures, {receipts.duplicates} duplicates; "
                f"first deliveries not answered 200: on {on.failed or 0}, "
                f"off {stacks['off'].failed or 0}"
            )
            p99 = deliver._percentiles(from_event)[1]
            summary += [
                f"{engine:<10} events/s burst {burst:6.0f}, drain {drain:6.0f}; "
                f"steady p50 {deliver._percentiles(from_event)[0]:5.0f} ms, p99 {p99:5.0f} ms; "
                f"throughput on/off {ratio:.3f}",
                f"{'':<10} p99 < 1 s at {args.rate:g}/s: "
                f"{'met' if p99 < 1000 and not missing else 'NOT met'}; "
                f"on/off >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'}",
            ]
        finally:
            for stack in stacks.values():
                if stack.client is not None:
                    await stack.client.aclose()
                if stack.server is not None:
                    stack.server.terminate()
                    stack.server.wait(timeout=30)
    return summary


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=50.0, help="first deliveries per second")
    parser.add_argument("--steady-seconds", type=float, default=20.0)
    parser.add_argument("--burst", type=int, default=300, help="events in the burst and the drain")
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput cell")
    parser.add_argument("--cells", type=int, default=3, help="throughput cells per side")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="on PostgreSQL")
    parser.add_argument("--engine", choices=["both", "sqlite", "postgresql"], default="both")
    parser.add_argument(
        "--quick", action="store_true", help="burst 100, steady 10 s, 2 cells of 5 s"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the API worker on core 0, the receiver and the dispatcher's process on the "
        "other cores (this script and PostgreSQL unpinned): the dispatcher and the "
        "receiver off the API's core, as in a deployment",
    )
    parser.add_argument(
        "--side-rate",
        type=float,
        help="first deliveries per second alongside the throughput cells (default: --rate; "
        "0: the dispatcher has nothing to send)",
    )
    args = parser.parse_args()
    if args.pin:
        global PINNED
        PINNED = True
    if args.side_rate is None:
        args.side_rate = args.rate
    if args.quick:
        args.burst, args.steady_seconds, args.cells, args.seconds = 100, 10.0, 2, 5.0
    summary = []
    if args.engine != "postgresql":
        with tempfile.TemporaryDirectory(prefix="accord-bench-events-") as tmp:
            urls = {side: f"sqlite+aiosqlite:///{tmp}/{side}.db" for side in ("on", "off")}
            summary += await _run_engine("sqlite", urls, args)
    pg = os.environ.get("ACCORD_BENCH_PG_URL")
    if args.engine == "sqlite":
        pass
    elif pg:
        async with _pg_off_database(pg) as off:
            summary += await _run_engine("postgresql", {"on": pg, "off": off}, args)
    else:
        print("\n(PostgreSQL skipped: set ACCORD_BENCH_PG_URL to an empty database)")
    print("\nsummary (targets: commit-to-receipt p99 < 1 s at 50/s; throughput on/off >= 0.9):")
    print("\n".join(summary))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        _receiver(int(sys.argv[2]))
    else:
        uvloop.run(main())
