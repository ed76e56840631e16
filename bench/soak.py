"""Mixed workload and soak (SECURITY-TESTS I03 and I07). Figures and checks, not a test.

    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/accord_soak \\
        .venv/bin/python bench/soak.py [--minutes 5] [--workers 4] [--clients 16]
    .venv/bin/python bench/soak.py --engine sqlite --minutes 1     # one worker

Starts `accord serve` (PostgreSQL: --workers processes; SQLite: one) and drives it
with concurrent clients for the given time, each picking at random: send a
referral (sealed with the client library, under a live consent), deliver one,
grant a consent and revoke it after a referral went out under it, read lists and
referrals, ask for records as an investigator, create a subject, and export the
organization's own entries of the last minute as its auditor. I03 is 5 minutes
with 4 workers; I07 (the nightly soak) is `--minutes 30`.

Printed: requests and their status codes by kind, the service's resident memory,
open file descriptors and (PostgreSQL) database connections, sampled every 10 s.
Checked at the end, each a failure (exit status 1) if it does not hold:
- zero 5xx (O-no5xx);
- the whole log, exported by an oversight auditor, verifies offline against the
  service's checkpoint key read from its key directory (O-verify);
- O-order(C) for every revoked consent: no `disclosure` under it after its
  `consent.revoked` entry, and every delivery answered after the revocation was
  answered withholding everything;
- soak: resident memory at the end within 10 % of its value after the first
  minute (I07; judged on runs of two minutes or more); database connections
  within the pools' bound (workers x ACCORD_DATABASE_POOL_SIZE: a pool opens
  connections as concurrency asks, up to its size); file descriptors grown by no
  more than those connections plus a small margin.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import deliver as common
import httpx
import uvloop
from accord_client.audit_verify import verify_lines
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import OrganizationKeys, generate_organization_keys
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.auth.dev_tokens import issue_dev_token
from service.auth.principals import Role
from service.clock import SystemClock
from service.crypto import FileSigner
from service.keyring import CHECKPOINT_KEY
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ["identity", "contact", "language", "needs"]


class Federation:
    """Organizations, keys, tokens and the shared state the clients work on."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clock = SystemClock()
        self.orgs: dict[str, str] = {}
        self.keys: dict[str, OrganizationKeys] = {}
        self.subjects: list[str] = []
        self.consents: list[tuple[str, str]] = []  # (consent id, subject id), live
        self.referrals: list[str] = []
        self.revoked: dict[str, float] = {}  # consent id -> when its revocation returned
        self.under: dict[str, str] = {}  # referral id -> consent id
        self.late_releases: list[str] = []  # deliveries after a revocation that released

    def headers(self, org: str, role: Role) -> dict[str, str]:
        token = issue_dev_token(
            self.settings,
            clock=self.clock,
            org_id=uuid.UUID(self.orgs[org]),
            roles=[role],
            sub=f"soak-{org}-{role.value}",
        )
        return {"Authorization": f"Bearer {token}"}


async def _bootstrap(http: httpx.AsyncClient, fed: Federation, platform: uuid.UUID) -> None:
    fed.orgs["platform"] = str(platform)
    admin = fed.headers("platform", Role.platform_admin)

    async def post(path: str, body: object, headers: dict[str, str]) -> dict[str, Any]:
        r = await http.post(path, json=body, headers=headers)
        if r.status_code not in (200, 201):
            raise SystemExit(f"bootstrap {path}: {r.status_code} {r.text[:300]}")
        data: dict[str, Any] = r.json()
        return data

    for name, sector in (
        ("vsp", "victim_services"),
        ("shelter", "shelter"),
        ("police", "law_enforcement"),
        ("oversight", "oversight"),
    ):
        org = await post("/v1/organizations", {"name": f"Soak {name}", "sector": sector}, admin)
        fed.orgs[name] = org["id"]
    now = datetime.now(UTC)
    collab = await post(
        "/v1/collaborations",
        {
            "name": "Soak task force",
            "agreement": {
                "flows": [
                    {
                        "from_sector": "victim_services",
                        "to_sector": "shelter",
                        "purposes": ["services_referral"],
                        "categories": CATEGORIES,
                    },
                    {
                        "from_sector": "victim_services",
                        "to_sector": "law_enforcement",
                        "purposes": ["investigation"],
                        "categories": ["identity", "contact"],
                    },
                ],
                "effective_from": (now - timedelta(days=1)).isoformat(),
                "document_sha256": "ab" * 32,
            },
        },
        admin,
    )
    for member in ("vsp", "shelter", "police"):
        body = {"org_id": fed.orgs[member]}
        await post(f"/v1/collaborations/{collab['id']}/members", body, admin)
    for name in ("vsp", "shelter"):
        fed.keys[name] = generate_organization_keys(fed.orgs[name])
        r = await http.put(
            f"/v1/organizations/{fed.orgs[name]}/keys",
            json=fed.keys[name].public_registration(),
            headers=fed.headers(name, Role.org_admin),
        )
        if r.status_code != 200:
            raise SystemExit(f"bootstrap keys: {r.status_code} {r.text[:300]}")


async def _grant(http: httpx.AsyncClient, fed: Federation) -> tuple[str, str] | None:
    vsp = fed.headers("vsp", Role.caseworker)
    r = await http.post("/v1/subjects", json={}, headers=vsp)
    if r.status_code != 201:
        return None
    subject = r.json()["id"]
    fed.subjects.append(subject)
    r = await http.post(
        f"/v1/subjects/{subject}/consents",
        json={
            "recipients": [fed.orgs["shelter"]],
            "purposes": ["services_referral"],
            "categories": CATEGORIES,
            "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            "method": "written",
            "language": "en",
            "evidence_sha256": "cd" * 32,
        },
        headers=vsp,
    )
    if r.status_code != 201:
        return None
    return r.json()["id"], subject


async def _send(http: httpx.AsyncClient, fed: Federation, consent: str, subject: str) -> int:
    fields = [
        PlainField(name=f"field_{i}", category=CATEGORIES[i % len(CATEGORIES)], value=f"v{i}")
        for i in range(8)
    ]
    envelope = seal_envelope(
        fields,
        sender_org=fed.orgs["vsp"],
        sender_signing_key=fed.keys["vsp"].current_signing_key.seed,
        recipient_org=fed.orgs["shelter"],
        recipient_encryption_key=fed.keys["shelter"].current_encryption_key.public_key,
        subject_id=subject,
        purpose="services_referral",
        consent_id=consent,
    )
    r = await http.post(
        "/v1/referrals",
        json={
            "subject_id": subject,
            "recipient_org_id": fed.orgs["shelter"],
            "consent_id": consent,
            "purpose": "services_referral",
            "services_requested": ["emergency_shelter"],
            "urgency": "urgent",
            "envelope": envelope,
        },
        headers=fed.headers("vsp", Role.caseworker),
    )
    if r.status_code == 201:
        fed.referrals.append(r.json()["id"])
        fed.under[r.json()["id"]] = consent
    return r.status_code


async def _deliver(http: httpx.AsyncClient, fed: Federation) -> int:
    referral = random.choice(fed.referrals)
    consent = fed.under[referral]
    asked = time.monotonic()
    r = await http.post(
        f"/v1/referrals/{referral}/deliver", headers=fed.headers("shelter", Role.caseworker)
    )
    revoked_at = fed.revoked.get(consent)
    late = r.status_code == 200 and revoked_at is not None and revoked_at < asked
    if late and r.json()["released"]:
        fed.late_releases.append(referral)
    return r.status_code


async def _revoke(http: httpx.AsyncClient, fed: Federation) -> int | None:
    live = [c for c in fed.consents if c[0] not in fed.revoked]
    if len(live) < 3:
        return None
    consent, _ = random.choice(live[:-2])  # keep a few live for sending
    r = await http.post(
        f"/v1/consents/{consent}/revoke",
        json={"reason": "withdrawn"},
        headers=fed.headers("vsp", Role.caseworker),
    )
    if r.status_code == 200:
        fed.revoked[consent] = time.monotonic()
    return r.status_code


async def _one(http: httpx.AsyncClient, fed: Federation, counts: Counter[tuple[str, int]]) -> None:
    kind = random.choices(
        ["send", "deliver", "consent", "revoke", "read", "records", "subject", "export"],
        weights=[20, 35, 8, 4, 15, 8, 6, 4],
    )[0]
    if kind == "deliver" and not fed.referrals:
        kind = "consent"
    if kind == "send":
        live = [c for c in fed.consents if c[0] not in fed.revoked]
        if not live:
            kind = "consent"
        else:
            consent, subject = random.choice(live)
            counts[(kind, await _send(http, fed, consent, subject))] += 1
            return
    if kind == "consent":
        granted = await _grant(http, fed)
        counts[(kind, 201 if granted else 0)] += 1
        if granted:
            fed.consents.append(granted)
        return
    if kind == "deliver":
        counts[(kind, await _deliver(http, fed))] += 1
    elif kind == "revoke":
        status = await _revoke(http, fed)
        if status is not None:
            counts[(kind, status)] += 1
    elif kind == "read":
        box = random.choice(["sent", "received"])
        org = "vsp" if box == "sent" else "shelter"
        r = await http.get(f"/v1/referrals?box={box}", headers=fed.headers(org, Role.caseworker))
        counts[(kind, r.status_code)] += 1
        if r.status_code == 200 and r.json()["items"]:
            one = r.json()["items"][0]["id"]
            r = await http.get(f"/v1/referrals/{one}", headers=fed.headers(org, Role.caseworker))
            counts[(kind, r.status_code)] += 1
    elif kind == "records":
        r = await http.post(
            "/v1/records-requests",
            json={
                "holder_org_id": fed.orgs["vsp"],
                "subject_ref": f"REF-{random.randrange(10**6)}",
                "categories": ["identity", "contact"],
                "purpose": "investigation",
                "legal_basis": "consent",
                "justification": "Soak test request",
            },
            headers=fed.headers("police", Role.investigator),
        )
        counts[(kind, r.status_code)] += 1
    elif kind == "subject":
        r = await http.post("/v1/subjects", json={}, headers=fed.headers("vsp", Role.caseworker))
        counts[(kind, r.status_code)] += 1
    elif kind == "export":
        # An auditor's periodic export: its own organization's last minute.
        since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = await http.get(
            "/v1/audit/export", params={"since": since}, headers=fed.headers("vsp", Role.auditor)
        )
        counts[(kind, r.status_code)] += 1


def _fds(pid: int) -> int:
    total = 0
    for each in common._service_pids(pid):
        try:
            total += len(os.listdir(f"/proc/{each}/fd"))
        except OSError:
            continue
    return total


async def _db_connections(url: str | None) -> int | None:
    if url is None:
        return None
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return int(
                await conn.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            )
    finally:
        await engine.dispose()


def _check_log(lines: list[bytes], fed: Federation) -> list[str]:
    """O-order(C) over the exported entries; returns the violations."""
    problems = []
    revoked_seq: dict[str, int] = {}
    entries = [json.loads(line) for line in lines[:-1]]
    for entry in entries:
        if entry["action"] == "consent.revoked":
            revoked_seq[entry["details"]["consent_id"]] = entry["seq"]
    for entry in entries:
        if entry["action"] != "disclosure":
            continue
        consent = entry["details"].get("consent_id")
        if consent in revoked_seq and entry["seq"] > revoked_seq[consent]:
            problems.append(f"disclosure {entry['seq']} after revocation of {consent}")
    if fed.late_releases:
        problems.append(f"{len(fed.late_releases)} deliveries released after a revocation")
    return problems


async def run(args: argparse.Namespace) -> int:
    pg = os.environ.get("ACCORD_BENCH_PG_URL") if args.engine == "postgresql" else None
    if args.engine == "postgresql" and not pg:
        raise SystemExit("set ACCORD_BENCH_PG_URL to an empty PostgreSQL database")
    workdir = Path(tempfile.mkdtemp(prefix="accord-soak-"))
    url = pg or f"sqlite+aiosqlite:///{workdir}/soak.db"
    workers = args.workers if pg else 1
    settings = Settings(database_url=url, key_dir=workdir / "keys")
    platform = await common._platform_org(url)
    server, base = common.start_service(
        url,
        workdir,
        workers,
        ACCORD_STAFF_TOKEN_MAX_LIFETIME_SECONDS="86400",
        # One investigator asks far more often than the per-principal limit allows.
        ACCORD_RATE_LIMIT_RECORDS_REQUESTS="1000000/minute",
    )
    counts: Counter[tuple[str, int]] = Counter()
    samples: list[tuple[float, int, int, int | None]] = []
    failures: list[str] = []
    try:
        await common.wait_ready(base)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            fed = Federation(settings)
            await _bootstrap(http, fed, platform)
            print(
                f"== {args.engine}: {workers} worker(s), {args.clients} clients, "
                f"{args.minutes:g} min"
            )
            started = time.monotonic()
            deadline = started + args.minutes * 60

            async def client() -> None:
                while time.monotonic() < deadline:
                    await _one(http, fed, counts)

            async def sampler() -> None:
                while time.monotonic() < deadline:
                    rss, _ = common._rss_kib(server.pid)
                    sample = (time.monotonic() - started, rss, _fds(server.pid))
                    samples.append((*sample, await _db_connections(pg)))
                    done = sum(counts.values())
                    print(
                        f"  {sample[0]:6.0f} s  requests {done:7d}  RSS {rss / 1024:6.0f} MiB  "
                        f"fds {sample[2]:4d}  db connections {samples[-1][3]}"
                    )
                    await asyncio.sleep(10)

            await asyncio.gather(sampler(), *(client() for _ in range(args.clients)))
            oversight = fed.headers("oversight", Role.auditor)
            exported = await http.get("/v1/audit/export", headers=oversight)
            if exported.status_code != 200:
                raise SystemExit(f"export: {exported.status_code}")
        lines = [line for line in exported.content.split(b"\n") if line]
        key = FileSigner.load(settings.key_dir / CHECKPOINT_KEY).public_key
        log = verify_lines(lines, public_key=key, origin=settings.audit_origin)
        print(f"audit log verified (O-verify): {log.size} entries")
        failures += _check_log(lines, fed)
    finally:
        server.terminate()
        server.wait(timeout=60)

    print("requests by kind and status:")
    for (kind, status), n in sorted(counts.items()):
        print(f"  {kind:8s} {status:4d} {n:8d}")
    errors = sum(n for (_, status), n in counts.items() if status >= 500)
    if errors:
        failures.append(f"{errors} responses with 5xx")
    if len(samples) >= 2:
        # Memory, descriptors and connections grow while pools, caches and
        # connections warm up: compare from the first minute on (from the second
        # sample on short runs), and judge memory only on runs of two minutes or more.
        judged = args.minutes >= 2
        base_sample = next((s for s in samples if s[0] >= 60), None) if judged else samples[1]
        base_sample = base_sample or samples[1]
        end = samples[-1]
        growth = (end[1] - base_sample[1]) / base_sample[1]
        print(
            f"from {base_sample[0]:.0f} s to the end: RSS {base_sample[1] / 1024:.0f} -> "
            f"{end[1] / 1024:.0f} MiB ({growth:+.1%}); fds {base_sample[2]} -> {end[2]}; "
            f"db connections {base_sample[3]} -> {end[3]}"
        )
        if judged and growth > 0.10:
            failures.append(f"RSS grew {growth:.1%} (I07: under 10 %)")
        # Pools open connections as concurrency asks for them, up to their size: growth
        # within that bound is not a leak; descriptors may grow with them (a socket
        # each) and by a small margin otherwise.
        pool_bound = workers * settings.database_pool_size
        more_connections = 0
        if end[3] is not None and base_sample[3] is not None:
            more_connections = max(0, end[3] - base_sample[3])
            if end[3] > pool_bound:
                failures.append(f"{end[3]} database connections, above the pools' {pool_bound}")
        if end[2] - base_sample[2] - more_connections > 16:
            failures.append(f"file descriptors grew from {base_sample[2]} to {end[2]}")
    for failure in failures:
        print(f"FAILED: {failure}")
    print("all checks held" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    raise SystemExit(uvloop.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
