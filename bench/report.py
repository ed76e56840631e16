"""A collaboration's report over a year: time and peak memory, on SQLite and on
PostgreSQL (docs/benchmarks/reports.md; target under 2 s and 200 MB on PostgreSQL).

The federation: the eight organizations of bench/audit_seed.py in one
collaboration, 100,000 referrals sent over 2026 with their timelines (about
240,000 timeline events), a few thousand records requests with their duties and
consents, and an audit log of 1,000,000 entries seeded by bench/audit_seed.py
(every one a disclosure between two members, in January 2026: the worst case for
the disclosure table). Rows are bulk inserted (executemany in batches).

Each report runs in a process of its own (`probe`), so that its peak resident
memory is the report's: the figure printed is the peak (VmHWM) less the resident
memory before the report began. The baseline in the same run is one
`SELECT count(*)` of the year's referrals, the least any report must read.

    .venv/bin/python bench/report.py [--quick]
    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/empty \
        .venv/bin/python bench/report.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from audit_seed import ORGS, SECTORS, seed
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from service.auth.principals import Principal, Role
from service.clock import FrozenClock
from service.collaborations.models import Collaboration, Membership
from service.consents.models import ConsentRevocation, ConsentVersion
from service.db import migrate
from service.organizations.models import Organization
from service.records_requests.models import Obligation, RecordsRequest, Review
from service.referrals.models import Referral, ReferralEvent
from service.sectors import Sector
from service.settings import Settings
from service.storage import make_engine, make_sessionmaker
from service.subjects.models import Subject

COLLAB = uuid.UUID(int=0xC011AB)
SUBJECT = uuid.UUID(int=0x5B)
CONSENT = uuid.UUID(int=0xC0)
YEAR = datetime(2026, 1, 1, tzinfo=UTC)
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
BATCH = 10_000
OVERSIGHT = Principal(
    subject="bench-oversight",
    org_id=uuid.UUID(int=0xB0),
    sector=Sector.oversight,
    roles=frozenset({Role.auditor}),
)


def _at(rng: random.Random) -> datetime:
    return YEAR + timedelta(seconds=rng.randrange(365 * 86400))


async def _federation(url: str, referrals: int, requests: int) -> None:
    engine = create_async_engine(url)
    rng = random.Random(25)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(Organization),
                [
                    {"id": org, "name": f"bench org {i}", "sector": SECTORS[i % len(SECTORS)].value,
                     "created_at": SINCE, "active": True, "accepting_referrals": True,
                     "hours": "business_hours", "languages": [], "services": [],
                     "populations": [], "confidential": False}
                    for i, org in enumerate(ORGS)
                ],
            )  # fmt: skip
            await conn.execute(
                insert(Collaboration),
                [
                    {
                        "id": COLLAB,
                        "name": "Bench task force",
                        "created_at": SINCE,
                        "created_by": "b",
                    }
                ],
            )
            await conn.execute(
                insert(Membership),
                [{"id": uuid.uuid4(), "collaboration_id": COLLAB, "org_id": org, "added_at": SINCE,
                  "added_by": "b"} for org in ORGS],
            )  # fmt: skip
            await conn.execute(
                insert(Subject),
                [{"id": SUBJECT, "owner_org_id": ORGS[0], "created_at": SINCE, "created_by": "b",
                  "is_minor": False}],
            )  # fmt: skip
            consents = []
            revocations = []
            for i in range(requests):
                grant = CONSENT if i == 0 else uuid.UUID(int=0xC0 << 64 | i)
                recorded = _at(rng)
                consents.append({
                    "id": grant, "grant_id": grant, "version": 1, "supersedes": None,
                    "subject_id": SUBJECT, "owner_org_id": ORGS[i % 8], "recipients": [],
                    "purposes": ["services_referral"], "categories": ["contact"], "fields": None,
                    "valid_from": recorded, "expires_at": recorded + timedelta(days=90),
                    "method": "written", "language": "en", "evidence_sha256": None,
                    "witness_role": None, "given_by": "survivor", "recorded_by": "b",
                    "recorded_at": recorded,
                })  # fmt: skip
                if i % 5 == 0:
                    revocations.append(
                        {
                            "grant_id": grant,
                            "revoked_at": recorded + timedelta(days=9),
                            "revoked_by": "b",
                            "reason": "placeholder",
                        }
                    )
            await conn.execute(insert(ConsentVersion), consents)
            await conn.execute(insert(ConsentRevocation), revocations)
        for first in range(0, referrals, BATCH):
            rows, events = [], []
            for n in range(first, min(first + BATCH, referrals)):
                rid = uuid.UUID(int=0xEF << 96 | n)
                sender = ORGS[n % 8] if n % 3 else ORGS[0]
                recipient = ORGS[(n * 7 + 1) % 8] if n % 3 else ORGS[1]
                created = _at(rng)
                timeline = [(created, "sent")]
                roll = rng.random()
                delivered = None
                if roll < 0.85:
                    delivered = created + timedelta(hours=rng.randrange(1, 400))
                    timeline.append((delivered, "delivered"))
                    later = delivered + timedelta(hours=rng.randrange(1, 400))
                    if roll < 0.6:
                        timeline.append((later, "accepted"))
                    elif roll < 0.8:
                        timeline.append((later, "declined"))
                rows.append({
                    "id": rid, "sender_org_id": sender, "recipient_org_id": recipient,
                    "subject_id": SUBJECT, "consent_id": CONSENT, "purpose": "services_referral",
                    "services_requested": [], "urgency": "routine", "status": timeline[-1][1],
                    "envelope_id": f"{n:064x}", "envelope_header": {}, "signature": b"s",
                    "sender_roles": ["caseworker"], "created_by": "b", "created_at": created,
                    "updated_at": timeline[-1][0], "delivered_at": delivered,
                    "idempotency_key": None, "request_sha256": "0" * 64,
                    "decline_reason": "no_capacity" if timeline[-1][1] == "declined" else None,
                    "outcome": None, "shredded_at": None, "shred_reason": None,
                })  # fmt: skip
                events += [{"referral_id": rid, "at": at, "event": e, "actor": "b",
                            "actor_org_id": sender, "detail": None, "audit_seq": None}
                           for at, e in timeline]  # fmt: skip
            async with engine.begin() as conn:
                await conn.execute(insert(Referral), rows)
                await conn.execute(insert(ReferralEvent), events)
        async with engine.begin() as conn:
            reqs, duties, reviews = [], [], []
            for i in range(requests):
                qid = uuid.UUID(int=0xAE << 96 | i)
                created = _at(rng)
                responded = created + timedelta(days=rng.randrange(1, 20))
                reqs.append({
                    "id": qid, "requester_org_id": ORGS[2], "holder_org_id": ORGS[i % 2],
                    "requested_by": "b", "subject_ref": "REF", "categories": ["contact"],
                    "purpose": "investigation", "legal_basis": "court_order",
                    "legal_reference": None, "document_sha256": None, "justification": "x",
                    "preliminary": [{"category": "contact", "outcome": "allowed", "policies": []}],
                    "policy_version": "v", "status": "released", "created_at": created,
                    "updated_at": responded, "responded_at": responded,
                })  # fmt: skip
                due = created + timedelta(days=5)
                duties.append(
                    {
                        "id": uuid.uuid4(),
                        "holder_org_id": ORGS[i % 2],
                        "request_id": qid,
                        "kind": "notify_survivor",
                        "created_at": created,
                        "due_at": due,
                        "done_at": created + timedelta(days=rng.randrange(1, 9)),
                    }
                )
                if i % 4 == 0:
                    reviews.append(
                        {
                            "id": uuid.uuid4(),
                            "holder_org_id": ORGS[i % 2],
                            "request_id": qid,
                            "released_by": "b",
                            "created_at": created,
                            "due_at": created + timedelta(hours=72),
                            "closed_at": None,
                        }
                    )
            await conn.execute(insert(RecordsRequest), reqs)
            await conn.execute(insert(Obligation), duties)
            await conn.execute(insert(Review), reviews)
    finally:
        await engine.dispose()


def _memory_kb() -> tuple[int, int]:
    fields = dict(
        line.split(":", 1)
        for line in Path("/proc/self/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def probe(url: str, period: str, granularity: str) -> None:
    """One report (or the baseline query), in this process; one JSON line out."""
    from service.reports.compute import build_report
    from service.reports.schemas import Period

    published = "quarter" if granularity == "baseline" else granularity
    settings = Settings(database_url=url, environment="test", report_granularity=published)  # type: ignore[arg-type]
    engine = make_engine(settings)
    p = Period.parse(period)
    try:
        async with make_sessionmaker(engine)() as session:  # warm: connection, imports
            await session.execute(select(func.count()).select_from(Collaboration))
        before, _ = _memory_kb()
        started = time.perf_counter()
        async with make_sessionmaker(engine)() as session:
            if granularity == "baseline":
                cells = await session.scalar(
                    select(func.count()).where(
                        Referral.created_at >= p.start, Referral.created_at < p.end
                    )
                )
            else:
                report = await build_report(
                    session, COLLAB, p, viewer=OVERSIGHT, settings=settings,
                    clock=FrozenClock(datetime(2027, 1, 2, tzinfo=UTC)),
                )  # fmt: skip
                cells = sum(len(t.rows) * len(t.columns) for t in report.tables)
                await session.commit()
        seconds = time.perf_counter() - started
        _, peak = _memory_kb()
        print(json.dumps({"seconds": seconds, "peak_mb": (peak - before) / 1024,
                          "rss_mb": peak / 1024, "cells": cells}))  # fmt: skip
    finally:
        await engine.dispose()


def _run_probe(url: str, period: str, granularity: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "probe", url, period, granularity],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"probe failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def bench_engine(url: str, label: str, args: argparse.Namespace) -> None:
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    if args.seeded:
        print(f"{label}: the federation already seeded")
    else:
        started = time.perf_counter()
        await _federation(url, args.referrals, args.requests)
        seeded = time.perf_counter() - started
        audit_engine = make_engine(Settings(database_url=url, environment="test"))
        try:
            audit_seconds = await seed(audit_engine, args.entries)
        finally:
            await audit_engine.dispose()
        print(f"{label}: {args.referrals:,} referrals in {seeded:.1f} s, "
              f"{args.entries:,} audit entries in {audit_seconds:.1f} s")  # fmt: skip
    if url.startswith("postgresql"):
        # As autovacuum would have by now on a log that grew by appends: the
        # visibility map that lets the disclosures' index answer alone.
        vacuum = create_async_engine(url, isolation_level="AUTOCOMMIT")
        try:
            async with vacuum.connect() as conn:
                await conn.execute(text("VACUUM ANALYZE"))
        finally:
            await vacuum.dispose()
    base = [_run_probe(url, "2026", "baseline") for _ in range(args.repeat)]
    b = min(r["seconds"] for r in base)
    print(f"  baseline (count the year's referrals): {b * 1000:.0f} ms")
    for period, granularity in (("2026", "quarter"), ("2026", "month"), ("2026-Q3", "quarter")):
        runs = [_run_probe(url, period, granularity) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["seconds"])
        print(
            f"  report {period} (granularity {granularity}): {best['seconds']:.2f} s "
            f"(x{best['seconds'] / b:.0f} the baseline), peak +{best['peak_mb']:.0f} MB "
            f"(process {best['rss_mb']:.0f} MB), {best['cells']} cells; best of {args.repeat}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10,000 referrals, 100,000 entries")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false")
    parser.add_argument(
        "--seeded", action="store_true", help="ACCORD_BENCH_PG_URL holds a seeded federation"
    )
    args = parser.parse_args()
    args.referrals, args.entries, args.requests = (
        (10_000, 100_000, 300) if args.quick else (100_000, 1_000_000, 3_000)
    )
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            await bench_engine(f"sqlite+aiosqlite:///{tmp}/bench.db", "SQLite", args)
        pg = os.environ.get("ACCORD_BENCH_PG_URL")
        if pg:
            await bench_engine(pg, "PostgreSQL", args)
        else:
            print("(PostgreSQL skipped: set ACCORD_BENCH_PG_URL to an empty database)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "probe":
        asyncio.run(probe(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        asyncio.run(main())
