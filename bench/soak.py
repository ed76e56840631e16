"""Mixed workload and soak (SECURITY-TESTS I03 and I07). Figures and checks, not a test.

    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/accord_soak \\
        .venv/bin/python bench/soak.py [--minutes 5] [--workers 4] [--clients 16]
    .venv/bin/python bench/soak.py --engine sqlite --minutes 1     # one worker

Starts `accord serve` (PostgreSQL: --workers processes; SQLite: one) and drives it
with concurrent clients for the given time, each picking at random: send a
referral (sealed with the client library, under a live consent), deliver one,
grant a consent and revoke it after a referral went out under it, read lists and
referrals, ask for records as an investigator, create a subject, and export the
organization's own entries of the last minute as its auditor (the requests are in
bench/soak_workload.py). I03 is 5 minutes with 4 workers; I07 (the nightly soak)
is `--minutes 30`. To measure another source tree's code (a commit before a
change), run that tree's copy of this script with PYTHONPATH naming the tree and
its clients/ folder: the service it starts inherits the path.

Printed: requests and their status codes by kind, the service's resident memory,
open file descriptors and (PostgreSQL) database connections, sampled every 10 s;
requests per second in each minute with the machine's load average beside it, and
the ratio of the last five minutes to the first five (issue 26: at least 0.9; on
runs under 15 minutes, the last third against the first). Then the same clients,
on the same service and workers, deliver only, for `--delivery-seconds` before the
mixed run and again after it: the mixed workload's requests per second against
that delivery-only figure (issue 26: at least 0.7). The machine is shared: compare
figures of one run, each printed with the load average it ran under.
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
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import deliver as common
import httpx
import uvloop
from accord_client.audit_verify import verify_lines
from soak_workload import (
    Federation,
    bootstrap,
    deliveries_only,
    one,
    per_minute,
    seed,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.auth.principals import Role
from service.crypto import FileSigner
from service.keyring import CHECKPOINT_KEY
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


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


# What the service's connections wait for, sampled once a second (PostgreSQL).
_WAITS = text(
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'running') AS what, count(*) "
    "FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND state = 'active' GROUP BY 1"
)
# The statements that took the database's time, when pg_stat_statements is loaded.
_TOP_STATEMENTS = text(
    "SELECT calls, total_exec_time, mean_exec_time, left(regexp_replace(query, '\\s+', ' ', "
    "'g'), 110) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
    "WHERE datname = current_database()) ORDER BY total_exec_time DESC LIMIT 12"
)
_DEAD_ROWS = text(
    "SELECT relname, n_live_tup, n_dead_tup, autovacuum_count FROM pg_stat_user_tables "
    "ORDER BY n_dead_tup DESC LIMIT 6"
)


async def _wait_sampler(
    url: str, deadline: float, started: float, waits: list[Counter[str]]
) -> None:
    """Per second, how many of the service's statements wait, and for what; a
    Counter per five-minute window in `waits`."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            while time.monotonic() < deadline:
                window = int((time.monotonic() - started) // 300)
                while len(waits) <= window:
                    waits.append(Counter())
                for what, n in (await conn.execute(_WAITS)).all():
                    waits[window][what] += n
                waits[window]["(samples)"] += 1
                await conn.commit()
                await asyncio.sleep(1.0)
    finally:
        await engine.dispose()


async def _database_report(url: str) -> None:
    """The server's settings that bear on a long run, the statements that took its
    time (pg_stat_statements, when preloaded) and the tables' dead rows."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            autovacuum = await conn.scalar(text("SHOW autovacuum"))
            print(f"database: autovacuum {autovacuum}")
            try:
                rows = (await conn.execute(_TOP_STATEMENTS)).all()
            except Exception as error:  # noqa: BLE001 - the extension is optional
                print(f"  (pg_stat_statements unavailable: {type(error).__name__})")
                await conn.rollback()
            else:
                print("  statements by total time:  calls  total s  mean ms  query")
                for calls, total, mean, query in rows:
                    print(f"  {calls:>10} {total / 1000:>8.1f} {mean:>8.3f}  {query}")
            print("  dead rows:  table  live  dead  autovacuums")
            for name, live, dead, vacuums in (await conn.execute(_DEAD_ROWS)).all():
                print(f"  {name:<28} {live:>9} {dead:>9} {vacuums:>4}")
    finally:
        await engine.dispose()


async def _reset_statements(url: str) -> None:
    """Zero pg_stat_statements, so that its figures are the mixed run's alone."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            try:
                await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                await conn.execute(text("SELECT pg_stat_statements_reset()"))
                await conn.commit()
            except Exception as error:  # noqa: BLE001 - the extension is optional
                print(f"  (pg_stat_statements not reset: {type(error).__name__})")
    finally:
        await engine.dispose()


def _print_waits(waits: list[Counter[str]]) -> None:
    print("mean statements of the service in flight per second, by what they wait for:")
    for i, window in enumerate(waits):
        samples = window.pop("(samples)", 0) or 1
        top = ", ".join(f"{what} {n / samples:.2f}" for what, n in window.most_common(5))
        print(f"  minutes {5 * i:>3}-{5 * i + 5:<3} {top}")


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
    done_at: list[float] = []  # when each mixed request ended, from the run's start
    loads: list[tuple[float, float]] = []  # (time, 1-minute load average)
    only: list[tuple[str, float, float, Counter[int]]] = []
    failures: list[str] = []
    waits: list[Counter[str]] = []
    try:
        await common.wait_ready(base)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            fed = Federation(settings)
            await bootstrap(http, fed, platform)
            print(
                f"== {args.engine}: {workers} worker(s), {args.clients} clients, "
                f"{args.minutes:g} min; load average {os.getloadavg()[0]:.2f}"
            )
            if args.delivery_seconds > 0:
                await seed(http, fed, 4 * args.clients)
                only.append(
                    (
                        "before",
                        *await deliveries_only(http, fed, args.clients, args.delivery_seconds),
                    )
                )
                print(f"  deliveries only, before: {only[-1][1]:.1f} req/s, load {only[-1][2]:.2f}")
            started = time.monotonic()
            deadline = started + args.minutes * 60
            if pg:
                await _reset_statements(pg)

            async def client() -> None:
                while time.monotonic() < deadline:
                    mine: Counter[tuple[str, int]] = Counter()
                    await one(http, fed, mine)
                    counts.update(mine)
                    done_at.extend([time.monotonic() - started] * mine.total())

            async def sampler() -> None:
                while time.monotonic() < deadline:
                    rss, _ = common._rss_kib(server.pid)
                    sample = (time.monotonic() - started, rss, _fds(server.pid))
                    samples.append((*sample, await _db_connections(pg)))
                    loads.append((sample[0], os.getloadavg()[0]))
                    done = sum(counts.values())
                    print(
                        f"  {sample[0]:6.0f} s  requests {done:7d}  RSS {rss / 1024:6.0f} MiB  "
                        f"fds {sample[2]:4d}  db connections {samples[-1][3]}  "
                        f"load {loads[-1][1]:.2f}"
                    )
                    await asyncio.sleep(10)

            watchers = [_wait_sampler(pg, deadline, started, waits)] if pg else []
            await asyncio.gather(sampler(), *watchers, *(client() for _ in range(args.clients)))
            mixed_rate = len(done_at) / (time.monotonic() - started)
            mixed_load = sum(la for _, la in loads) / max(1, len(loads))
            if args.delivery_seconds > 0:
                only.append(
                    (
                        "after",
                        *await deliveries_only(http, fed, args.clients, args.delivery_seconds),
                    )
                )
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

    if done_at and loads:
        per_minute(done_at, loads, args.minutes)
    if waits:
        _print_waits(waits)
    if pg:
        await _database_report(pg)
    if only:
        print(f"mixed workload: {mixed_rate:.1f} req/s over the run (mean load {mixed_load:.2f})")
        for phase, rate, load, statuses in only:
            print(
                f"deliveries only, {phase}: {rate:.1f} req/s (load {load:.2f}; "
                f"statuses {dict(statuses)}); mixed/delivery-only {mixed_rate / rate:.2f} "
                "(target >= 0.7)"
            )
        errors_only = sum(n for _, _, _, st in only for code, n in st.items() if code >= 500)
        if errors_only:
            failures.append(f"{errors_only} deliveries answered 5xx in the delivery-only phases")
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
    parser.add_argument(
        "--delivery-seconds",
        type=float,
        default=60.0,
        help="length of each delivery-only phase, before and after the mixed run (0: none)",
    )
    parser.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
    raise SystemExit(uvloop.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
