"""Deliveries against another commit's code, side by side: `bench/deliver.py --against REV`.
Figures only, not a test.

Checks REV out in a temporary git worktree (removed at the end, also on an error,
Ctrl-C or SIGTERM) and starts two services at once, each from its own tree, with its
own database and key directory: "before" runs REV's code, "after" this working tree's
(uncommitted changes included). Each service imports its own tree (PYTHONPATH; checked
and printed at start-up). Each tree seeds its own service with its own bench/deliver.py
(the platform organization directly, then the 20-field referral over HTTP) and
verifies its own audit log after the load (O-verify), in a subprocess whose imports
resolve to that tree, so REV's module paths do not matter here.

Per engine and concurrency, after a warm-up of each side (not counted), cells of
`POST /v1/referrals/{id}/deliver` alternate before, after, before, after ... (`--cells`
each, `--seconds` long); each side's cells are pooled: deliveries per second, p50/p99
latency, the service's CPU time per delivery, each cell's rate (the spread says how far
to trust the ratio on a shared machine), the ratios after/before and whether after is
within 5% of before. Figures, not a verdict: the exit status says nothing about speed.

SQLite always (a file each, one worker); PostgreSQL when ACCORD_BENCH_PG_URL is set: its
server and user are used, with a fresh database per side (bench_cmp_before_PID and
bench_cmp_after_PID, dropped at the end); the database it names is not touched.

    .venv/bin/python bench/deliver.py --against 6297750 [--seconds 10] [--cells 3]
    ACCORD_BENCH_PG_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/deliver.py --against 6297750 [--workers 2] [--engine both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import deliver
from deliver import ROOT
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

WARMUP_SECONDS = 1.0  # per side and concurrency, before the counted cells
WITHIN = 0.05
# deliver._drive_raw or deliver._drive_httpx (`--client`).
Drive = Callable[..., Coroutine[Any, Any, deliver.Cell]]

# Run by `_tree_step` in a subprocess with a tree's environment and working directory:
# that tree's bench/deliver.py seeds its service or verifies its log, importing that
# tree's modules (which may live at other paths than this tree's).
_STEP = """
import asyncio, json, sys, uuid
from pathlib import Path
sys.path.insert(0, "bench")
import deliver as d
step, url, key_dir, base, *rest = sys.argv[1:]
settings = d.Settings(database_url=url, key_dir=Path(key_dir), test_hooks=True)
if step == "platform":
    print(asyncio.run(d._platform_org(url)))
elif step == "bootstrap":
    print(json.dumps(asyncio.run(d._bootstrap(base, settings, uuid.UUID(rest[0])))))
else:
    print(asyncio.run(d._verify_log(base, settings, uuid.UUID(rest[0]), int(rest[1]))))
"""


@dataclass
class Side:
    """One of the two services: its tree, and what the run learns about it."""

    name: str
    tree: Path
    workdir: Path = Path()
    url: str = ""
    server: subprocess.Popen[bytes] | None = None
    base: str = ""
    platform: str = ""
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delivered: int = 0  # answered 200, warm-ups included (O-verify counts them all)


@dataclass
class Pool:
    """One side's cells at one concurrency, pooled."""

    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextlib.contextmanager
def _worktree(rev: str) -> Iterator[tuple[Path, str]]:
    """REV checked out (detached) in a temporary directory, removed afterwards."""
    commit = _git("rev-parse", "--verify", "--short", f"{rev}^{{commit}}")
    tree = Path(tempfile.mkdtemp(prefix="accord-against-"))
    try:
        _git("worktree", "add", "--detach", str(tree), commit)
        yield tree, commit
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True, check=False)


def _imports(tree: Path) -> str:
    """Where `service` and `accord_client` come from in `tree`'s environment: both
    must be in that tree, or the comparison would measure one tree twice."""
    check = "import service, accord_client; print(service.__file__, accord_client.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tree,
        env=deliver.tree_env(tree),
        capture_output=True,
        text=True,
        check=False,
    )
    files = done.stdout.split()
    if done.returncode or not all(Path(f).resolve().is_relative_to(tree.resolve()) for f in files):
        raise SystemExit(f"{tree}: imports resolve elsewhere: {done.stdout}{done.stderr}")
    return f"service from {files[0]}, accord_client from {files[1]}"


def _tree_step(side: Side, step: str, *rest: str) -> str:
    """Run one step of `_STEP` with the side's tree; the last line it printed."""
    done = subprocess.run(
        [sys.executable, "-c", _STEP, step, side.url, str(side.workdir / "keys"), *rest],
        cwd=side.tree,
        env=deliver.tree_env(side.tree),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise SystemExit(f"{side.name}: {step} failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1]


@contextlib.asynccontextmanager
async def _pg_databases(server: str) -> AsyncIterator[list[str]]:
    """A fresh database per side on `server`'s PostgreSQL, dropped afterwards."""
    url = make_url(server)
    names = [f"bench_cmp_{side}_{os.getpid()}" for side in ("before", "after")]
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            for name in names:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield [url.set(database=name).render_as_string(hide_password=False) for name in names]
    finally:
        async with admin.connect() as conn:
            for name in names:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _cell(side: Side, drive: Drive, concurrency: int, seconds: float, pool: Pool) -> None:
    """One cell of deliveries on one side, added to `pool`."""
    assert side.server is not None
    cpu = deliver._cpu_seconds(side.server.pid)
    cell = await drive(
        side.base, side.path, side.headers, concurrency, seconds, 200, pool.latencies
    )
    pool.cpu += deliver._cpu_seconds(side.server.pid) - cpu
    pool.rates.append(cell[0])
    pool.seconds += cell[4] / cell[0] if cell[0] else seconds
    pool.requests += cell[4]
    pool.errors += cell[3]
    side.delivered += cell[4] - cell[3]


def _row(concurrency: int, side: str, pool: Pool) -> str:
    p50, p99 = deliver._percentiles(pool.latencies)
    cpu = pool.cpu / max(1, pool.requests) * 1e3
    rates = " ".join(f"{rate:.0f}" for rate in pool.rates)
    return (
        f"{concurrency:>4} {side:<6} {pool.rate:>8.1f} {p50:>7.1f} {p99:>7.1f} "
        f"{cpu:>7.2f} {pool.errors:>6}  {rates}"
    )


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


async def _run_engine(
    engine: str, urls: list[str], sides: list[Side], args: argparse.Namespace, workers: int
) -> list[str]:
    """Both services on `engine`, alternating cells; the summary lines."""
    for side, url in zip(sides, urls, strict=True):
        side.url, side.delivered = url, 0
        side.workdir = Path(args.workdir) / f"{engine}-{side.name}"
        side.workdir.mkdir()
    summary = []
    try:
        for side in sides:
            side.platform = _tree_step(side, "platform", "-")
            side.server, side.base = deliver.start_service(
                side.url,
                side.workdir,
                workers,
                tree=side.tree,
                ACCORD_TEST_HOOKS="true",
                ACCORD_STAFF_TOKEN_MAX_LIFETIME_SECONDS="3600",
            )
        for side in sides:
            await deliver.wait_ready(side.base)
            referral, side.headers = json.loads(
                _tree_step(side, "bootstrap", side.base, side.platform)
            )
            side.path = f"/v1/referrals/{referral}/deliver"
        processes = "one worker" if workers == 1 else f"{workers} workers"
        print(
            f"\n== {engine}: 20-field referral, {processes} each, {args.cells} cells of "
            f"{args.seconds:g} s per side, alternating before/after"
        )
        print(
            f"{'conc':>4} {'side':<6} {'deliv/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'cpu ms':>7} {'errors':>6}  each cell's deliveries/s"
        )
        drive = deliver._CLIENTS[args.client]
        for concurrency in args.concurrency:
            for side in sides:  # warm-up (pools, caches, connections), not counted
                await _cell(side, drive, concurrency, WARMUP_SECONDS, Pool())
            pools = {side.name: Pool() for side in sides}
            for _ in range(args.cells):
                for side in sides:
                    await _cell(side, drive, concurrency, args.seconds, pools[side.name])
            for side in sides:
                print(_row(concurrency, side.name, pools[side.name]))
            before, after = pools["before"], pools["after"]
            rate = after.rate / before.rate if before.rate else float("nan")
            p99 = (
                deliver._percentiles(after.latencies)[1] / deliver._percentiles(before.latencies)[1]
            )
            verdict = (
                f"throughput {'yes' if rate >= 1 - WITHIN else 'NO'} ({_percent(rate)}), "
                f"p99 {'yes' if p99 <= 1 + WITHIN else 'NO'} ({_percent(p99)})"
            )
            print(
                f"{'':>4} after/before: throughput {rate:.3f}, p99 {p99:.3f}; "
                f"after within 5% of before: {verdict}"
            )
            summary.append(
                f"{engine:<10} {concurrency:>4}   throughput {rate:.3f}   p99 {p99:.3f}   {verdict}"
            )
        for side in sides:
            assert side.server is not None
            _, peak = deliver._rss_kib(side.server.pid)
            verified = _tree_step(side, "verify", side.base, side.platform, str(side.delivered))
            print(f"{side.name}: service peak RSS {peak / 1024:.0f} MiB; {verified}")
    finally:
        for side in sides:
            if side.server is not None:
                side.server.terminate()
                side.server.wait(timeout=30)
                side.server = None
    return summary


async def main(args: argparse.Namespace) -> None:
    if args.cells < 2:
        raise SystemExit("--cells: at least 2 per side")
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    head = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    with _worktree(args.against) as (tree, commit):
        sides = [Side("before", tree), Side("after", ROOT)]
        labels = {"before": commit, "after": head + (" + uncommitted changes" if dirty else "")}
        print(f"deliveries, before = {labels['before']} against after = {labels['after']}")
        for side in sides:
            print(f"  {side.name} ({labels[side.name]}, {side.tree}): {_imports(side.tree)}")
        args.workdir = tempfile.mkdtemp(prefix="accord-compare-")
        summary = []
        try:
            if args.engine != "postgresql":
                urls = [
                    f"sqlite+aiosqlite:///{args.workdir}/sqlite-{s.name}/bench.db" for s in sides
                ]
                summary += await _run_engine("sqlite", urls, sides, args, 1)
            pg = os.environ.get("ACCORD_BENCH_PG_URL")
            if args.engine == "sqlite":
                pass
            elif pg:
                async with _pg_databases(pg) as urls:
                    summary += await _run_engine("postgresql", urls, sides, args, args.workers)
            else:
                print("\n(PostgreSQL skipped: set ACCORD_BENCH_PG_URL to name a server)")
        except (KeyboardInterrupt, asyncio.CancelledError):
            shutil.rmtree(args.workdir, ignore_errors=True)
            raise
        except BaseException:
            print(f"\n(service logs and keys kept in {args.workdir})", file=sys.stderr)
            raise
        shutil.rmtree(args.workdir, ignore_errors=True)
    print(f"\nafter ({labels['after']}) / before ({labels['before']}):")
    print("\n".join(summary))
