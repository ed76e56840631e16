"""The ceiling of one log (issue 26): how long an append holds the audit log's
hash-chain head on PostgreSQL under load, and the appends per second that allows.
Figures only, not a test.

Every audited write of every node appends through the one head row, so appends are
serial: the log's ceiling is 1 / (mean time the head is held per append). The
service's code is not touched. Two bench-only triggers, created in the benchmark's
own database (ACCORD_BENCH_PG_URL, an empty database), stamp each append with the
server's clock into unlogged tables:

- `want`: when a transaction asks for the head. For a delivery, a deferred trigger
  on `audit_pending` named to fire just before the service's commit-time append
  (triggers of one event fire in name order); for a write that locks the head
  inside its transaction (`lock_head`), the transaction's start;
- `got`: when its entry row is inserted (an AFTER INSERT trigger on
  `audit_entries`), which happens only while the head is held.

For consecutive entries i and i+1 where i+1 asked before i got the head (so i+1
was waiting the whole time i held it), got(i+1) - got(i) is the head's serial time
for entry i: the rest of i's hold after its insert (the trigger's remaining writes,
the COMMIT's WAL flush), the hand-over, and i+1's work before its insert. Its mean
is the time the log spends per append when it is the bottleneck, so 1 / mean is
the ceiling. The stamps add two small inserts into unlogged tables per append:
the figures are, if anything, slightly high.

Load: referral deliveries (the disclosure path) through HAProxy in front of two
nodes (bench/nodes.py's stack), at each concurrency for a fixed time; then subject
creations (an audited write of another kind) at the last concurrency.

    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/bench_head \\
        .venv/bin/python bench/head.py [--seconds 10] [--concurrency 8 32] [--nodes 2]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import deliver  # bench/deliver.py: the raw keep-alive load generator
import httpx
import nodes  # bench/nodes.py: the stack of nodes behind HAProxy
import uvloop
from sqlalchemy.engine import make_url

MARKS = """
CREATE UNLOGGED TABLE IF NOT EXISTS bench_head_want (txid bigint, at timestamptz);
CREATE UNLOGGED TABLE IF NOT EXISTS bench_head_got
    (txid bigint, seq bigint, xact timestamptz, at timestamptz);
CREATE OR REPLACE FUNCTION bench_head_want() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO bench_head_want VALUES (txid_current(), clock_timestamp()); RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION bench_head_got() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO bench_head_got
    VALUES (txid_current(), NEW.seq, transaction_timestamp(), clock_timestamp());
  RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS aaa_bench_head_want ON audit_pending;
CREATE CONSTRAINT TRIGGER aaa_bench_head_want AFTER INSERT ON audit_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bench_head_want();
DROP TRIGGER IF EXISTS bench_head_got ON audit_entries;
CREATE TRIGGER bench_head_got AFTER INSERT ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION bench_head_got();
"""
STAMPS = """
SELECT g.seq, extract(epoch FROM g.at)::float8 AS got,
       extract(epoch FROM coalesce(w.at, g.xact))::float8 AS want, w.at IS NOT NULL AS staged
FROM bench_head_got g LEFT JOIN bench_head_want w USING (txid) ORDER BY g.seq
"""


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _sql(url: str, statement: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        if statement.lstrip().upper().startswith("SELECT"):
            rows: list[asyncpg.Record] = await conn.fetch(statement)
            return rows
        await conn.execute(statement)
        return []
    finally:
        await conn.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def analyse(rows: list[asyncpg.Record], label: str, rate: float) -> float | None:
    """Print the serial time per append (ms) where the next append was waiting, and
    the ceiling; return the mean (s)."""
    serial, alone = [], []
    for before, after in itertools.pairwise(rows):
        if after["seq"] != before["seq"] + 1:
            continue
        if after["want"] < before["got"]:
            serial.append(after["got"] - before["got"])
        elif after["staged"]:
            alone.append(after["got"] - after["want"])  # asked with no one ahead of it
    if not serial:
        print(f"{label}: no append waited for another ({len(rows)} appends): no contention")
        return None
    mean = statistics.fmean(serial)
    ms = [v * 1e3 for v in serial]
    print(
        f"{label}: {len(rows)} appends at {rate:.0f}/s, {len(serial)} of them with the next "
        f"waiting ({len(serial) / max(1, len(rows) - 1):.0%})\n"
        f"   head serial time per append ms: p50 {_pct(ms, 0.5):.2f}  p90 {_pct(ms, 0.9):.2f}  "
        f"p99 {_pct(ms, 0.99):.2f}  max {max(ms):.2f}  mean {mean * 1e3:.2f}\n"
        f"   ceiling of one log: 1 / mean = {1 / mean:,.0f} appends/s"
        + (f"; uncontended ask-to-insert p50 {_pct(alone, 0.5) * 1e3:.2f} ms" if alone else "")
    )
    return mean


async def commit_flush(url: str, count: int = 300) -> str:
    """The server's durable-commit latency alone: `count` one-row commits in a row
    into a logged table, then into an unlogged one (no WAL flush), on one connection.
    A durable COMMIT waits for its WAL flush while the committing append still holds
    the head, so this is the floor of the head's time per append on this disk."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        figures = []
        for kind in ("", "UNLOGGED "):
            table = f"bench_flush_{len(kind)}"  # a constant of this benchmark
            await conn.execute(f"CREATE {kind}TABLE IF NOT EXISTS {table} (n int)")
            insert = f"INSERT INTO {table} VALUES ($1)"  # noqa: S608 - constant names
            took = []
            for n in range(count):
                began = time.perf_counter()
                await conn.execute(insert, n)
                took.append((time.perf_counter() - began) * 1e3)
            figures.append(f"p50 {_pct(took, 0.5):.2f} ms, p90 {_pct(took, 0.9):.2f} ms")
        return (
            f"one-row commit on this server: logged (WAL flushed) {figures[0]}; "
            f"unlogged (no flush) {figures[1]}"
        )
    finally:
        await conn.close()


async def _subjects(base: str, headers: dict[str, str], concurrency: int, seconds: float) -> float:
    """Subject creations (an audited write that is not a disclosure) for `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await client.post("/v1/subjects", json={}, headers=headers)
                done += r.status_code == 201

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - began)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument(
        "--no-flush-wait",
        action="store_true",
        help="what-if, never for production: the benchmark database's commits do not wait "
        "for their WAL flush (synchronous_commit off), which leaves the head's CPU part",
    )
    args = parser.parse_args()
    url = os.environ.get("ACCORD_BENCH_PG_URL")
    if not url:
        raise SystemExit("set ACCORD_BENCH_PG_URL to an empty PostgreSQL database")
    if args.no_flush_wait:  # before any node connects: every session of the database
        name = make_url(url).database
        await _sql(url, f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        print("(what-if: synchronous_commit = off in this database: no WAL flush waited for)")
    stack = await nodes.start_stack(url, args.nodes)
    try:
        assert stack.fed is not None
        path = await nodes.delivery_path(stack.fed)
        await _sql(url, MARKS)
        base = stack.base(args.nodes)
        print(f"== head held per append: {args.nodes} nodes behind HAProxy, one worker each")
        print(await commit_flush(url))
        means = []
        for concurrency in args.concurrency:
            await _sql(url, "TRUNCATE bench_head_want, bench_head_got")
            cell = await deliver._drive_raw(
                base, path, stack.fed.headers("shelter"), concurrency, args.seconds, 200
            )
            label = f"deliveries, {concurrency} clients"
            means.append(analyse(await _sql(url, STAMPS), label, cell[0]))
        await _sql(url, "TRUNCATE bench_head_want, bench_head_got")
        concurrency = args.concurrency[-1]
        rate = await _subjects(base, stack.fed.headers("vsp"), concurrency, args.seconds)
        analyse(await _sql(url, STAMPS), f"subject creations, {concurrency} clients", rate)
        known = [m for m in means if m is not None]
        if known:
            print(
                f"\nceiling of one log from deliveries under the most load: "
                f"{1 / known[-1]:,.0f} appends/s ({known[-1] * 1e3:.2f} ms per append)"
            )
    finally:
        await stack.close()


if __name__ == "__main__":
    uvloop.run(main())
