"""`accord serve` on PostgreSQL runs its webhook dispatcher in ONE child process of its
own (service/events/dispatch_process.py), not in the API worker: the worker listens
for no notification and delivers nothing while the child is stopped; events reach a
loopback receiver through the child; a child killed with SIGKILL is started again and
delivers what was committed meanwhile; SIGTERM to serve leaves no child behind. On
SQLite ACCORD_WEBHOOK_DISPATCH_PROCESS=on is refused at start. The supervisor itself
(real processes): a child that fails at once stops serve (H09, fail closed); one that
exits later is started again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from service.cli import app as cli
from service.clock import FrozenClock
from service.events.dispatch_process import DispatcherChild
from service.settings import Settings
from tests.events.support import (
    LOOPBACK,
    Receiver,
    deliveries,
    emit_events,
    hook_settings,
    register,
)
from tests.support.databases import TestDatabase
from tests.support.processes import ROOT, children, free_port, service_env, wait_until_healthy
from tests.support.world import World

ACCORD = str(Path(sys.executable).parent / "accord")


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return hook_settings(db, key_dir)  # the test's own app dispatches nothing


def _dispatchers(serve_pid: int) -> list[int]:
    return [pid for pid, cmdline in children(serve_pid) if b"\0dispatch\0" in cmdline]


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _one_dispatcher(serve_pid: int, *, other_than: int | None = None) -> int:
    """The one dispatcher child of serve (one other than `other_than`), waited for."""
    deadline = time.monotonic() + 60
    found: list[int] = []
    while time.monotonic() < deadline:
        found = [pid for pid in _dispatchers(serve_pid) if _alive(pid)]
        if len(found) == 1 and found[0] != other_than:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"not one dispatcher child: {found}")


async def _listening(db: TestDatabase) -> int:
    """Sessions on the test's database whose last statement was a LISTEN: one per
    running dispatcher (service/events/listen.py)."""
    url = make_url(db.url)
    conn = await asyncpg.connect(
        user=url.username, password=url.password, host=url.host, port=url.port, database="postgres"
    )
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
            url.database,
        )
        return count
    finally:
        await conn.close()


async def _settled_listeners(db: TestDatabase, expected: int) -> int:
    """The count once it is `expected` (a killed process's session ends soon after it),
    or as it is after 60 s."""
    deadline = time.monotonic() + 60
    count = await _listening(db)
    while count != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        count = await _listening(db)
    return count


async def _delivered(app: Any, event: uuid.UUID, *, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        rows = [r for r in await deliveries(app) if r.event_id == event]
        if rows and all(r.status == "succeeded" for r in rows):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered: {[(r.status, r.attempts) for r in rows]}")
        await asyncio.sleep(0.1)


async def _kill_all(server: asyncio.subprocess.Process) -> None:
    """A failed test: nothing left running (the child is in a session of its own)."""
    for pid in _dispatchers(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if server.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        await server.wait()


@contextlib.asynccontextmanager
async def _serving(
    db: TestDatabase, key_dir: Path, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`accord serve` on the test's database with the default dispatcher settings (a
    child on PostgreSQL), its output in `log`: (the process, its base URL) once it
    answers; nothing of it left running afterwards."""
    port = free_port()
    env = service_env(
        db,
        key_dir,
        ACCORD_WEBHOOK_ALLOWED_NETWORKS=",".join(LOOPBACK),
        ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS="0.05",
        ACCORD_LOG_LEVEL="INFO",
    )
    env.pop("ACCORD_WEBHOOK_DISPATCH_IN_SERVE", None)
    env.pop("ACCORD_WEBHOOK_DISPATCH_PROCESS", None)  # the defaults: true, auto
    env.pop("ACCORD_WEBHOOK_DISPATCH_METRICS_URL", None)  # serve's to set
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            ACCORD, "serve", "--port", str(port),
            cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
        try:
            await wait_until_healthy(base, attempts=1200)
            yield server, base
        finally:
            await _kill_all(server)


@pytest.mark.crash
async def test_serve_on_postgresql_dispatches_in_one_child_that_is_restarted_and_stopped(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    clock: FrozenClock,
    db: TestDatabase,
    key_dir: Path,
    tmp_path: Path,
) -> None:
    if db.engine != "postgresql":
        pytest.skip("on SQLite `accord serve` dispatches in its one process (auto)")
    log = tmp_path / "serve.log"
    with Receiver() as receiver:
        await register(client, world, "vsp", receiver.url())
        async with _serving(db, key_dir, log) as (server, base):
            child = await _one_dispatcher(server.pid)
            assert await _settled_listeners(db, 1) == 1  # the child listens: it is ready

            # The child stopped: the API answers, and nothing in it delivers.
            os.kill(child, signal.SIGSTOP)
            try:
                (first,) = await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
                async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
                    for _ in range(10):
                        assert (await http.get("/healthz")).status_code == 200
                        await asyncio.sleep(0.3)
                assert receiver.ids() == []
                # Long after the start: one LISTEN, the child's; the worker has none.
                assert await _listening(db) == 1
            finally:
                os.kill(child, signal.SIGCONT)
            await _delivered(app, first)
            assert receiver.ids() == [str(first)]

            # The child killed: another starts, and delivers what was committed meanwhile.
            os.kill(child, signal.SIGKILL)
            (second,) = await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
            replacement = await _one_dispatcher(server.pid, other_than=child)
            await _delivered(app, second)
            assert str(second) in receiver.ids()  # at least once
            assert await _settled_listeners(db, 1) == 1

            # SIGTERM to serve: it stops its child before it exits.
            server.send_signal(signal.SIGTERM)
            await asyncio.wait_for(server.wait(), timeout=60)
            assert not _alive(replacement)
            assert not _alive(child)
    output = log.read_text(errors="replace")
    assert '"webhook.dispatcher_exited"' in output  # logged with its exit code
    assert '"exit_code": -9' in output


async def _scrape(base: str) -> tuple[float, dict[str, Metric]]:
    """`GET /metrics` of the API: (seconds it took, its families by name), each name
    asserted to appear once in the exposition (parsed by prometheus_client)."""
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        began = time.monotonic()
        response = await http.get("/metrics")
        took = time.monotonic() - began
    assert response.status_code == 200
    families = list(text_string_to_metric_families(response.text))
    names = [family.name for family in families]
    assert sorted(set(names)) == sorted(names), names  # every family once
    return took, {family.name: family for family in families}


def _value(families: dict[str, Metric], name: str, **labels: str) -> float | None:
    for sample in families[name].samples if name in families else []:
        named = sample.name in (name, f"{name}_total")
        if named and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return None


async def _scrape_until(
    base: str, ready: Callable[[dict[str, Metric]], bool], *, within: float = 60.0
) -> dict[str, Metric]:
    deadline = time.monotonic() + within
    while True:
        _, families = await _scrape(base)
        if ready(families):
            return families
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen on /metrics: {sorted(families)}")
        await asyncio.sleep(0.2)


WEBHOOK_FAMILIES = {
    "accord_webhook_attempts",
    "accord_webhook_deliveries_pending",
    "accord_webhook_oldest_pending_age_seconds",
    "accord_webhook_endpoints_failing",
}


@pytest.mark.crash
async def test_serve_shows_its_dispatcher_childs_webhook_metrics(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    clock: FrozenClock,
    db: TestDatabase,
    key_dir: Path,
    tmp_path: Path,
) -> None:
    """The workers dispatch nothing; their /metrics shows the child's webhook figures
    (issue 19), and answers while the child does not, saying so."""
    if db.engine != "postgresql":
        pytest.skip("on SQLite `accord serve` dispatches in its one process (auto)")
    with Receiver() as receiver:
        await register(client, world, "vsp", receiver.url())
        async with _serving(db, key_dir, tmp_path / "serve.log") as (server, base):
            child = await _one_dispatcher(server.pid)
            (first,) = await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
            await _delivered(app, first)
            succeeded = {"outcome": "succeeded"}
            families = await _scrape_until(
                base, lambda f: (_value(f, "accord_webhook_attempts", **succeeded) or 0) >= 1
            )
            assert set(families) >= WEBHOOK_FAMILIES
            assert _value(families, "accord_webhook_dispatcher_up") == 1
            assert "accord_http_requests" in families  # the worker's own, once

            # A delivery held by its receiver: the child's backlog gauges count it.
            receiver.hang = True
            (second,) = await emit_events(app, world.orgs["vsp"], [uuid.uuid4()], at=clock.now())
            await receiver.wait_held(1, within=60)
            families = await _scrape_until(
                base, lambda f: (_value(f, "accord_webhook_deliveries_pending") or 0) >= 1
            )
            assert _value(families, "accord_webhook_dispatcher_up") == 1
            receiver.release()
            await _delivered(app, second)

            # The child stopped: /metrics answers at once, without webhook figures.
            os.kill(child, signal.SIGSTOP)
            try:
                took, families = await _scrape(base)
            finally:
                os.kill(child, signal.SIGCONT)
            assert took < 3.0
            assert _value(families, "accord_webhook_dispatcher_up") == 0
            assert not WEBHOOK_FAMILIES & set(families)
            assert "accord_http_requests" in families

            # The child killed, and not yet started again: the same.
            os.kill(child, signal.SIGKILL)
            while _alive(child):  # noqa: ASYNC110 - no event tells of its death
                await asyncio.sleep(0.01)
            took, families = await _scrape(base)  # its replacement comes after 1 s
            assert took < 3.0
            assert _value(families, "accord_webhook_dispatcher_up") == 0
            assert not WEBHOOK_FAMILIES & set(families)

            # Its replacement serves on the same port: the figures are back (a new
            # process's counts, from zero).
            await _one_dispatcher(server.pid, other_than=child)
            families = await _scrape_until(
                base, lambda f: _value(f, "accord_webhook_dispatcher_up") == 1
            )
            assert set(families) >= WEBHOOK_FAMILIES


def test_serve_on_sqlite_refuses_a_dispatcher_process(tmp_path: Path) -> None:
    """SQLite is served by one process, and one process dispatches."""
    result = CliRunner().invoke(
        cli,
        ["serve"],
        env={
            "ACCORD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/accord.db",
            "ACCORD_WEBHOOK_DISPATCH_PROCESS": "on",
        },
    )
    assert result.exit_code == 2, result.output
    assert "ACCORD_WEBHOOK_DISPATCH_PROCESS" in result.output
    assert "SQLite is served by one process" in result.output
    assert not (tmp_path / "accord.db").exists()


def test_the_mode_resolves_by_engine() -> None:
    sqlite = "sqlite+aiosqlite:///x.db"
    pg = "postgresql+asyncpg://u@h/d"
    assert Settings(database_url=pg).dispatches_in_child  # auto
    assert not Settings(database_url=sqlite).dispatches_in_child  # auto
    assert not Settings(database_url=pg, webhook_dispatch_process="off").dispatches_in_child
    assert not Settings(database_url=pg, webhook_dispatch_in_serve=False).dispatches_in_child


def _exits(code: int) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.exit({code})"]


def test_a_child_that_fails_at_once_is_not_started_again() -> None:
    """H09: the supervisor reports the failure (serve then stops) with the child's code."""
    failed = threading.Event()
    child = DispatcherChild(_exits(3), os.environ, on_failed_start=failed.set)
    child.start()
    try:
        assert failed.wait(30)
        first = child.pid
        time.sleep(1.5)  # more than the first backoff: no second start
        assert child.pid == first
    finally:
        child.stop()
    assert child.failed_start == 3


def test_a_child_that_exits_after_its_start_is_started_again() -> None:
    failed = threading.Event()
    child = DispatcherChild(_exits(1), os.environ, start_grace=0.0, on_failed_start=failed.set)
    child.start()
    try:
        seen = {child.pid}
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:  # backoff 1 s, then 2 s
            time.sleep(0.1)
            seen.add(child.pid)
    finally:
        child.stop()
    assert len(seen) >= 3, seen
    assert not failed.is_set()
    assert child.failed_start is None


def test_stopping_terminates_a_running_child() -> None:
    failed = threading.Event()
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    child = DispatcherChild(sleeper, os.environ, on_failed_start=failed.set)
    child.start()
    pid = child.pid
    assert pid is not None
    child.stop()
    assert not _alive(pid)
    assert not failed.is_set()
