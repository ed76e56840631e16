"""Test databases built by running the real migrations (STYLE.md rule 11).

SQLite: one migrated template file per session, copied for every test.
PostgreSQL: one migrated template database per session (from ACCORD_TEST_PG_URL),
cloned with CREATE DATABASE ... TEMPLATE for every test and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from service.db import migrate
from service.settings import Environment, Settings

PG_ENV = "ACCORD_TEST_PG_URL"
PG_SKIP_REASON = (
    f"PostgreSQL half skipped: set {PG_ENV} "
    "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test); "
    ".ci/run sets it"
)
_counter = itertools.count()


# Bookkeeping of authentication, not a change a request makes: when a principal was
# last seen (service/organizations/principals.py), written by any request that
# succeeds, so it is left out of O-unchanged.
_NOT_COUNTED = ('INSERT INTO "principal_sightings"', "INSERT INTO public.principal_sightings ")


def _counted(line: str) -> bool:
    return line.startswith("INSERT") and not line.startswith(_NOT_COUNTED)


@dataclass(frozen=True)
class TestDatabase:
    __test__: ClassVar[bool] = False  # a fixture type, not a test class

    engine: str  # "sqlite" | "postgresql"
    url: str
    path: Path | None = None  # SQLite file

    def dump(self) -> str:
        """O-unchanged: a logical dump of all data, lines sorted."""
        if self.engine == "sqlite":
            assert self.path is not None
            conn = sqlite3.connect(self.path)
            try:
                lines = [line for line in conn.iterdump() if _counted(line)]
            finally:
                conn.close()
            return "\n".join(sorted(lines))
        url = make_url(self.url)
        out = subprocess.run(
            [
                "pg_dump",
                "--data-only",
                "--inserts",
                "--no-owner",
                "-h",
                url.host or "127.0.0.1",
                "-p",
                str(url.port or 5432),
                "-U",
                url.username or "postgres",
                url.database or "",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        lines = [line for line in out.splitlines() if _counted(line)]
        return "\n".join(sorted(lines))

    def raw_bytes(self) -> bytes:
        """Everything the database holds on disk or in a dump (for O-noleak)."""
        if self.engine == "sqlite":
            assert self.path is not None
            data = b""
            for suffix in ("", "-wal", "-shm"):
                candidate = Path(str(self.path) + suffix)
                if candidate.exists():
                    data += candidate.read_bytes()
            return data
        url = make_url(self.url)
        return subprocess.run(
            [
                "pg_dump",
                "--no-owner",
                "-h",
                url.host or "127.0.0.1",
                "-p",
                str(url.port or 5432),
                "-U",
                url.username or "postgres",
                url.database or "",
            ],
            check=True,
            capture_output=True,
        ).stdout


def _pg_dsn(url: str, database: str) -> str:
    u = make_url(url).set(drivername="postgresql", database=database)
    return u.render_as_string(hide_password=False)


async def _pg_admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_pg_dsn(url, "postgres"))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    engine = create_async_engine(url)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return path


def sqlite_database(template: Path, directory: Path) -> TestDatabase:
    path = directory / f"accord-{next(_counter)}.db"
    shutil.copyfile(template, path)
    return TestDatabase("sqlite", f"sqlite+aiosqlite:///{path}", path)


def pg_base_url() -> str | None:
    return os.environ.get(PG_ENV) or None


def pg_template(base_url: str) -> str:
    base = make_url(base_url).database or "accord"
    name = f"{base}_tpl_{os.getpid()}"
    asyncio.run(
        _pg_admin(base_url, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    )
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_migrate(url))
    return name


def pg_database(base_url: str, template: str) -> TestDatabase:
    base = make_url(base_url).database or "accord"
    name = f"{base}_t{os.getpid()}_{next(_counter)}"
    asyncio.run(_pg_admin(base_url, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    return TestDatabase("postgresql", url)


def pg_drop(base_url: str, name: str) -> None:
    asyncio.run(_pg_admin(base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _modelled(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave out what a migration adds on purpose without a model: the audit log's
    chain key on PostgreSQL (migration 0180, service/audit/models.py)."""
    from service.audit.models import UNMODELLED

    return not (reflected and compare_to is None and name in UNMODELLED)


async def schema_difference(url: str) -> list[object]:
    """What autogenerate finds between the models and the database's schema (empty:
    they match), after checking the database is at the head migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.db.engine import Base

    engine = create_async_engine(url)
    try:
        assert await migrate.current_revision(engine) == migrate.head_revision()
        async with engine.connect() as conn:
            diff: list[object] = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "include_object": _modelled}
                    ),
                    Base.metadata,
                )
            )
        return diff
    finally:
        await engine.dispose()


def settings_for(db: TestDatabase, key_dir: Path, **extra: Any) -> Settings:
    """The service's settings for a test on `db` (what the `app` fixture uses), with
    `extra` settings on top."""
    base: dict[str, Any] = {
        "environment": Environment.test,
        "database_url": db.url,
        "key_dir": key_dir,
        "auto_migrate": False,
        "test_hooks": True,
        # Webhook tests start a dispatcher of their own (tests/events/support.py).
        "webhook_dispatch_in_serve": False,
    }
    return Settings(**{**base, **extra})
