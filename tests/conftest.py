"""Shared fixtures: a migrated database per test on SQLite and PostgreSQL, the app,
an HTTP client, a frozen clock, a token factory and the O-unchanged oracle."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.clock import FrozenClock
from service.settings import Settings
from tests.support import databases
from tests.support.databases import PG_SKIP_REASON, TestDatabase
from tests.support.world import TokenFactory, World

settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("nightly", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    base = databases.pg_base_url()
    if base is None:
        yield None
        return
    name = databases.pg_template(base)
    yield name
    databases.pg_drop(base, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    tmp_path: Path,
) -> Iterator[TestDatabase]:
    """A freshly migrated database, on each engine (PostgreSQL skipped with a reason
    when ACCORD_TEST_PG_URL is not set)."""
    if request.param == "sqlite":
        yield databases.sqlite_database(sqlite_template, tmp_path)
        return
    base = databases.pg_base_url()
    if base is None:
        pytest.skip(PG_SKIP_REASON)
    template = request.getfixturevalue("pg_template")
    database = databases.pg_database(base, template)
    try:
        yield database
    finally:
        from sqlalchemy.engine import make_url

        databases.pg_drop(base, make_url(database.url).database or "")


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys")
    path.chmod(0o700)
    return path


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def app_settings(db: TestDatabase, key_dir: Path) -> Settings:
    return databases.settings_for(db, key_dir)


@pytest.fixture
async def app(app_settings: Settings, clock: FrozenClock) -> AsyncIterator[object]:
    application = create_app(app_settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://accord.test") as http:
        yield http


@pytest.fixture
def tokens(app_settings: Settings, clock: FrozenClock) -> TokenFactory:
    return TokenFactory(app_settings, clock)


@pytest.fixture
async def world(app: object, tokens: TokenFactory, clock: FrozenClock) -> World:
    """Organizations of several sectors, one collaboration; no survivor data."""
    return await World.build(app, tokens, clock)


def _engine_of(nodeid: str) -> str | None:
    params = nodeid.rpartition("[")[2]
    for engine in ("postgresql", "sqlite"):
        if params.startswith(engine + "-") or params.startswith(engine + "]"):
            return engine
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Show that the PostgreSQL half really ran: passed database tests per engine."""
    counts = {"sqlite": 0, "postgresql": 0}
    for report in terminalreporter.stats.get("passed", []):
        engine = _engine_of(report.nodeid)
        if engine is not None and report.when == "call":
            counts[engine] += 1
    terminalreporter.write_sep("-", "database tests passed per engine")
    for engine, count in counts.items():
        terminalreporter.write_line(f"{engine}: {count}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ACCORD_TEST_PG_URL set, a run in which no PostgreSQL test passed is a failure:
    the PostgreSQL half must never be silently skipped in CI."""
    if not databases.pg_base_url() or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    passed = [r for r in reporter.stats.get("passed", []) if _engine_of(r.nodeid) == "postgresql"]
    selected_pg = [i for i in session.items if _engine_of(i.nodeid) == "postgresql"]
    if selected_pg and not passed:
        reporter.write_line("ACCORD_TEST_PG_URL is set but no PostgreSQL test passed", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
