"""Audit log speed against the targets of issue 4. Figures only, not a test.

    .venv/bin/python bench/audit.py [--entries 1000000] [--appends 2000] [--sample 500]
    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/accord_bench \
        .venv/bin/python bench/audit.py          # SQLite, then PostgreSQL (an empty database)
    .venv/bin/python bench/audit.py --entries 100000 --appends 400   # a quick run

Per database:

1. appends per second, one transaction each, with 1 and 8 concurrent writers;
2. append latency (median of --sample real appends) at 10^4 entries and at
   --entries, and their ratio (target < 1.3: appends are O(log n)); the log at
   10^4 is copied aside (a database made from it as a template, or a copy of the
   SQLite file) before it grows, and the two are measured in alternating rounds,
   after a vacuum, a checkpoint and a warm-up round each, so the machine's noise
   falls on both alike;
3. the real streaming export (service.audit.service.export_stream) of the whole
   log, in its own process, with its resident memory at 100k entries and at the
   end (target: flat, peak under 200 MB), and an own-organization (filtered)
   export with an inclusion proof per entry, the same way;
4. the offline verifier (accord_client.audit_verify_parallel, as `accord-audit
   verify` runs it) on both exports, in a process of its own, with one process and
   with one per core: seconds, entries per second and per second per core, the
   ratio, and the peak resident memory of the verifier and of its largest worker
   (issue 26 target: 1,000,000 entries in under 3 s on two cores, memory flat
   under 100 MB).

    .venv/bin/python bench/audit.py --verify-only [--quick]

measures step 4 alone, on exports of 10^5 and 10^6 entries (--quick: 10^5 only)
written without a database by bench/audit_seed.py (each entry from the function
`append` uses), so it takes a minute or two rather than the seeding's quarter hour.

The log is grown to 10^4 and --entries with bench/audit_seed.py (the entries,
chain, leaves and stored nodes that appends would write, in large batches),
continuing from the real appends of step 1. Before anything is measured on it,
the seeded log must verify: the real verifier recomputes every leaf, the chain
and the root from the exported bytes and checks the checkpoint the service signed
over the root it computes from the stored nodes; and real appends continue it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accord_client.audit_verify import VerifiedLog, read_lines, verify_lines
from accord_client.audit_verify_parallel import default_jobs
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.audit_seed import ORGS, seed
from service.audit.log import AuditEvent, append
from service.audit.tree import root_at, tree_size
from service.clock import SystemClock
from service.db import migrate
from service.settings import Settings
from service.storage import make_engine, make_sessionmaker

HERE = Path(__file__).resolve().parent


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _append_latencies(url: str, count: int, concurrency: int) -> tuple[float, list[float]]:
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


async def _size(url: str) -> int:
    engine = make_engine(Settings(database_url=url, environment="test"))
    try:
        async with make_sessionmaker(engine)() as session:
            return await tree_size(session)
    finally:
        await engine.dispose()


async def _grow(url: str, target: int) -> None:
    engine = make_engine(Settings(database_url=url, environment="test"))
    try:
        before = await _size(url)
        seconds = await seed(engine, target)
        rate = (target - before) / seconds if seconds else 0.0
        print(f"  seeded {before:,} -> {target:,} entries in {seconds:.1f} s ({rate:,.0f}/s)")
    finally:
        await engine.dispose()


async def _stored_root(url: str, size: int) -> bytes:
    engine = make_engine(Settings(database_url=url, environment="test"))
    try:
        async with make_sessionmaker(engine)() as session:
            return await root_at(session, size)
    finally:
        await engine.dispose()


async def _settle(url: str) -> None:
    """After a bulk load, let the database reach the state a log grown by appends
    is in: on PostgreSQL, vacuumed and analysed (autovacuum would have done it as
    the log grew; right after a load it runs, with the checkpointer, during the
    measurement) and checkpointed; on SQLite, the WAL checkpointed."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("VACUUM (ANALYZE) audit_entries, audit_nodes"))
                await conn.execute(text("CHECKPOINT"))
            else:
                await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await engine.dispose()


async def _copy_log(url: str) -> str:
    """A copy of the database at `url` (the log as it is now), for measuring two log
    sizes side by side: on PostgreSQL a database created from it as a template, on
    SQLite a copy of the file (after a WAL checkpoint)."""
    await _settle(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        copy = f"{parsed.database}.small"
        shutil.copyfile(parsed.database, copy)
        return parsed.set(database=copy).render_as_string(hide_password=False)
    name = f"{parsed.database}_small"
    admin = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            await conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"'))
    finally:
        await admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def _remove_files(database: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)


async def _drop_copy(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        _remove_files(parsed.database)
        return
    admin = create_async_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}"'))
    finally:
        await admin.dispose()


async def _interleaved_latencies(
    small_url: str, large_url: str, sample: int, rounds: int = 10
) -> tuple[list[float], list[float]]:
    """Append latencies on two logs, measured in alternating rounds so that the
    machine's noise (other processes, disk flushes) falls on both alike; each log is
    settled and warmed up by one round first (the first appends after a load read
    cold pages)."""
    small: list[float] = []
    large: list[float] = []
    per = max(1, sample // rounds)
    for url in (small_url, large_url):
        await _settle(url)
        await _append_latencies(url, per, 1)
    for _ in range(rounds):
        small += (await _append_latencies(small_url, per, 1))[1]
        large += (await _append_latencies(large_url, per, 1))[1]
    return small, large


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def _export(url: str, out: Path, org: str | None) -> dict[str, object]:
    """The export probe, in its own process (bench/audit_seed.py export)."""
    command = [sys.executable, str(HERE / "audit_seed.py"), "export", url, str(out)]
    if org is not None:
        command += ["--org", org]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f} MB"


def _print_export(label: str, result: dict[str, object]) -> None:
    memory = result["memory_kb"]
    assert isinstance(memory, dict)
    entries = int(str(result["entries"]))
    seconds = float(str(result["seconds"]))
    size_mb = int(str(result["bytes"])) / 1e6
    print(f"  {label}: {entries:,} entries, {size_mb:,.0f} MB in {seconds:.1f} s")
    points = [f"start {_mb(memory['start'][0])}"]
    points += [f"at {int(k):,} {_mb(v[0])}" for k, v in memory.items() if k.isdigit()]
    points.append(f"end {_mb(memory['end'][0])}")
    print(f"    RSS {', '.join(points)}; peak {_mb(memory['end'][1])} (target < 200 MB, flat)")


def _verify(path: Path, public_key: str) -> tuple[VerifiedLog, float]:
    started = time.perf_counter()
    result = verify_lines(
        read_lines(path), public_key=base64.b64decode(public_key), origin="bench.example/audit"
    )
    return result, time.perf_counter() - started


def _verify_probe(path: Path, public_key: str, jobs: int) -> dict[str, Any]:
    """`accord-audit verify --jobs N`'s work in a process of its own."""
    command = [sys.executable, str(HERE / "audit_verify_probe.py"), str(path), public_key]
    command.append(str(jobs))
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _print_verifier(path: Path, public_key: str) -> dict[str, Any]:
    """The verifier with one process and with one per core, side by side."""
    cores = default_jobs()
    rows = {jobs: _verify_probe(path, public_key, jobs) for jobs in sorted({1, cores})}
    for jobs, row in rows.items():
        rate = row["entries"] / row["seconds"]
        print(
            f"  verify, {jobs} process(es): {row['entries']:,} entries in {row['seconds']:.2f} s "
            f"({rate:,.0f} entries/s, {rate / jobs:,.0f} per s per core; CPU "
            f"{row['entries'] / row['cpu_seconds']:,.0f} entries per CPU-second); "
            f"peak RSS {_mb(row['peak_kb'])}, largest worker {_mb(row['worker_peak_kb'])}"
        )
    one, many = rows[1], rows[cores]
    assert one["root"] == many["root"]
    print(
        f"  ratio: {cores} processes are {one['seconds'] / many['seconds']:.2f}x one "
        f"(load average {os.getloadavg()[0]:.1f}); target: 1,000,000 in < 3 s"
    )
    return many


def verify_only(quick: bool, tmp: Path) -> None:
    for entries in (100_000,) if quick else (100_000, 1_000_000):
        out = tmp / f"synthetic-{entries}.jsonl"
        started = time.perf_counter()
        command = [sys.executable, str(HERE / "audit_seed.py"), "synthetic", str(out)]
        done = subprocess.run(
            [*command, "--entries", str(entries)], capture_output=True, text=True, check=True
        )
        key = json.loads(done.stdout.strip().splitlines()[-1])["public_key"]
        size = out.stat().st_size / 1e6
        print(f"== export of {entries:,} entries ({size:,.0f} MB, written in "
              f"{time.perf_counter() - started:.0f} s)")  # fmt: skip
        _print_verifier(out, key)
        out.unlink()


async def bench_engine(url: str, label: str, args: argparse.Namespace, tmp: Path) -> None:
    print(f"== {label}")
    print("appends, one transaction each")
    for concurrency in (1, 8):
        rate, latencies = await _append_latencies(url, args.appends, concurrency)
        median, p99 = _median_ms(latencies), _pct(latencies, 0.99) * 1e3
        print(
            f"  {concurrency} writer(s)   {rate:>7,.0f} appends/s   "
            f"median {median:7.3f} ms   p99 {p99:7.3f} ms"
        )

    print(f"append latency as the log grows (1 writer, median of {args.sample})")
    small_at = max(10_000, await _size(url))
    await _grow(url, small_at)
    small_url = await _copy_log(url)
    try:
        await _grow(url, args.entries)
        small, large = await _interleaved_latencies(small_url, url, args.sample)
    finally:
        await _drop_copy(small_url)
    ratio = statistics.median(large) / statistics.median(small)
    print(
        f"  at {small_at:,}: {_median_ms(small):.3f} ms; at {args.entries:,}: "
        f"{_median_ms(large):.3f} ms; ratio {ratio:.2f} (target < 1.3)"
    )

    if not args.export:
        return
    size = await _size(url)
    print(f"export of the whole log ({size:,} entries) and offline verification")
    out = tmp / f"{label}.jsonl"
    probe = _export(url, out, None)
    _print_export("export (oversight, full)", probe)
    many = _print_verifier(out, str(probe["public_key"]))
    # Faithful seeding: the real verifier recomputed every leaf, the chain and the
    # root from the exported bytes, and the checkpoint is signed over the root the
    # service computes from the stored nodes; they are the same.
    assert many["entries"] == size
    assert base64.b64decode(many["root"]) == await _stored_root(url, size)
    out.unlink()
    if args.filtered:
        out = tmp / f"{label}-org.jsonl"
        probe = _export(url, out, str(ORGS[0]))
        _print_export("export (one organization, filtered, with proofs)", probe)
        result, seconds = _verify(out, str(probe["public_key"]))
        assert result.filtered
        assert result.root == await _stored_root(url, result.size)
        print(
            f"  verify: OK, {result.entries:,} entries proven in a log of {result.size:,} "
            f"in {seconds:.2f} s"
        )
        out.unlink()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000, help="grow the log to this")
    parser.add_argument("--appends", type=int, default=2000, help="per writer setting")
    parser.add_argument("--sample", type=int, default=500, help="appends per latency sample")
    parser.add_argument("--no-filtered", dest="filtered", action="store_false")
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false")
    parser.add_argument(
        "--no-export", dest="export", action="store_false", help="appends and latency only"
    )
    parser.add_argument(
        "--verify-only", action="store_true", help="the offline verifier alone, no database"
    )
    parser.add_argument("--quick", action="store_true", help="with --verify-only: 10^5 only")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    if args.verify_only:
        with tempfile.TemporaryDirectory() as tmp:
            verify_only(args.quick, Path(tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.sqlite:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            await _migrated(url)
            await bench_engine(url, "SQLite", args, Path(tmp))
        pg = os.environ.get("ACCORD_BENCH_PG_URL")
        if pg:
            await _migrated(pg)
            await bench_engine(pg, "PostgreSQL", args, Path(tmp))
        else:
            print("(PostgreSQL skipped: set ACCORD_BENCH_PG_URL to an empty database)")


if __name__ == "__main__":
    asyncio.run(main())
