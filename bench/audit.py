"""Audit log speed: appends per second and append latency as the log grows, and the
offline verifier's speed on a large export. Figures only, not a test.

    .venv/bin/python bench/audit.py [--appends 2000] [--verify-entries 1000000]
    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/db \
        .venv/bin/python bench/audit.py

Targets (issue 4): verifying a 1,000,000-entry export in under 10 s; the append
latency at 10^6 entries within 1.3x of that at 10^4 (the O(log n) design). The
append-latency ratio is measured here between a small log and a log grown to
--grow entries, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nacl.signing
from accord_client.audit_format import GENESIS_PREV, entry_bytes, entry_document
from accord_client.audit_verify import verify_lines
from accord_client.checkpoint import Checkpoint, sign_note
from accord_client.merkle import CompactRange, leaf_hash
from sqlalchemy.ext.asyncio import create_async_engine

from service import migrate
from service.audit.log import AuditEvent, append
from service.clock import SystemClock
from service.db import make_sessionmaker
from service.settings import Settings


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _append_latencies(url: str, count: int, concurrency: int) -> tuple[float, list[float]]:
    from service.db import make_engine

    engine = make_engine(Settings(database_url=url, environment="test"))
    try:
        factory = make_sessionmaker(engine)
        clock = SystemClock()
        latencies: list[float] = []

        async def worker(n: int) -> None:
            for i in range(n):
                started = time.perf_counter()
                async with factory() as session:
                    await append(
                        session,
                        AuditEvent("bench.event", None, actor_label="bench", details={"i": i}),
                        clock=clock,
                    )
                    await session.commit()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        per = count // concurrency
        await asyncio.gather(*(worker(per) for _ in range(concurrency)))
        return (per * concurrency) / (time.perf_counter() - started), latencies
    finally:
        await engine.dispose()


async def _migrated(url: str) -> None:
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def _report(label: str, rate: float, latencies: list[float]) -> None:
    median = statistics.median(latencies) * 1e3
    p99 = _pct(latencies, 0.99) * 1e3
    print(f"  {label:<28} {rate:>9,.0f} appends/s   median {median:7.3f} ms   p99 {p99:7.3f} ms")


async def bench_appends(url: str, label: str, count: int) -> None:
    print(f"appends, one transaction each ({label})")
    for concurrency in (1, 8):
        rate, latencies = await _append_latencies(url, count, concurrency)
        _report(f"{concurrency} writer(s)", rate, latencies)


async def bench_growth(url: str, grow: int, sample: int) -> None:
    print(f"append latency as the log grows (SQLite, sample of {sample})")
    _, small = await _append_latencies(url, sample, 1)
    _, _ = await _append_latencies(url, grow, 1)
    _, large = await _append_latencies(url, sample, 1)
    ratio = statistics.median(large) / statistics.median(small)
    before, after = statistics.median(small) * 1e3, statistics.median(large) * 1e3
    print(f"  at ~{sample:,}: median {before:.3f} ms", end="; ")
    print(f"at ~{grow + 2 * sample:,}: median {after:.3f} ms; ratio {ratio:.2f}")


def bench_verify(entries: int) -> None:
    key = nacl.signing.SigningKey.generate()
    origin = "bench.example/audit"
    compact = CompactRange()
    prev = GENESIS_PREV
    lines: list[bytes] = []
    at = datetime(2026, 11, 22, tzinfo=UTC)
    for seq in range(entries):
        document = entry_document(
            seq=seq,
            at=at,
            action="disclosure",
            actor={
                "principal": "bench",
                "org": "00000000-0000-4000-8000-000000000001",
                "sector": "victim_services",
            },
            subject="s",
            counterpart=None,
            details={"categories": ["contact", "needs"], "policy_version": "ab" * 32},
            prev=prev,
        )
        raw = entry_bytes(document)
        leaf = leaf_hash(raw)
        compact.append(leaf)
        prev = leaf.hex()
        lines.append(raw)
    note = sign_note(
        Checkpoint(origin, entries, compact.root()).body(),
        name=origin,
        public_key=bytes(key.verify_key),
        sign=lambda m: bytes(key.sign(m).signature),
    )
    lines.append(json.dumps({"checkpoint": note}).encode())
    started = time.perf_counter()
    result = verify_lines(lines, public_key=bytes(key.verify_key), origin=origin)
    elapsed = time.perf_counter() - started
    print(f"offline verification of {result.size:,} entries")
    rate = result.size / elapsed
    print(f"  {elapsed:.2f} s   {rate:,.0f} entries/s   (target: 1,000,000 in < 10 s)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--grow", type=int, default=20000)
    parser.add_argument("--verify-entries", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await _migrated(url)
        await bench_appends(url, "SQLite", args.appends)
        await bench_growth(url, args.grow, 500)
    pg = os.environ.get("ACCORD_BENCH_PG_URL")
    if pg:
        await _migrated(pg)
        await bench_appends(pg, "PostgreSQL", args.appends)
    else:
        print("(PostgreSQL appends skipped: set ACCORD_BENCH_PG_URL to an empty database)")
    bench_verify(args.verify_entries)


if __name__ == "__main__":
    asyncio.run(main())
