"""One Alembic history on both engines: up from empty, down to empty, and the models
match the migrated schema (autogenerate finds no difference)."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import create_async_engine

from service.db import migrate
from service.db.engine import Base
from tests.support.databases import TestDatabase, schema_difference


async def test_models_match_migrated_schema(db: TestDatabase) -> None:
    assert await schema_difference(db.url) == []


async def test_downgrade_to_base_and_upgrade_again(db: TestDatabase) -> None:
    engine = create_async_engine(db.url)
    try:
        await migrate.downgrade(engine, "base")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert tables <= {"alembic_version"}
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert set(Base.metadata.tables) <= tables
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


async def test_processes_migrating_together_all_succeed(db: TestDatabase, tmp_path: Path) -> None:
    """Four `accord db upgrade` at once on an empty schema (as `accord serve --workers
    4` does at start in development, or two nodes): every one exits 0 and the schema
    ends at head. Without the migration lock PostgreSQL refused all but one
    (duplicate type or table)."""
    engine = create_async_engine(db.url)
    try:
        await migrate.downgrade(engine, "base")
    finally:
        await engine.dispose()
    env = {**os.environ, "ACCORD_DATABASE_URL": db.url, "ACCORD_KEY_DIR": str(tmp_path / "k")}
    upgrades = [
        await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "accord"),
            "db",
            "upgrade",
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for upgrade in upgrades:
        _, err = await asyncio.wait_for(upgrade.communicate(), 120)
        assert upgrade.returncode == 0, err.decode()[-1500:]
    assert await schema_difference(db.url) == []


def _migration(name: str) -> ModuleType:
    """A migration module, by file name (their names are not importable)."""
    path = migrate.migrations_path() / "versions" / name
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _body(function: str) -> str:
    """A CREATE FUNCTION statement's body, between its dollar quotes."""
    return function.split("$$")[1]


async def test_0230_writes_further_citing_events_and_its_downgrade_restores_0110(
    db: TestDatabase,
) -> None:
    """Migration 0230 adds `audit_pending.event_also` (both engines) and, on
    PostgreSQL, the trigger function that writes one citing event per name; down to
    0220 the column is gone and the function is 0110's exactly; up again, 0230's."""
    new = _migration("2026-12-07-0230_stage_more_citing_events.py")
    old = _migration("2026-12-02-0110_append_at_commit.py")
    assert new.FUNCTION.format(declare="", also="") == old.APPEND.replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1
    )
    engine = create_async_engine(db.url)

    async def state() -> tuple[bool, str | None]:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("audit_pending")}
            )
            source = None
            if db.engine == "postgresql":
                source = await conn.scalar(
                    text("SELECT prosrc FROM pg_proc WHERE proname = 'accord_append_at_commit'")
                )
        return "event_also" in columns, source

    try:
        with_also = _body(new.FUNCTION.format(declare="\n  v_name text;", also=new.ALSO))
        assert await state() == (True, with_also if db.engine == "postgresql" else None)
        await migrate.downgrade(engine, "0220")
        assert await state() == (False, _body(old.APPEND) if db.engine == "postgresql" else None)
        await migrate.upgrade(engine)
        assert await state() == (True, with_also if db.engine == "postgresql" else None)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()


async def test_0240_numbers_events_at_commit_and_its_downgrade_removes_it(
    db: TestDatabase,
) -> None:
    """Migration 0240 indexes `webhook_deliveries.event_id` (both engines) and, on
    PostgreSQL, adds the placeholder sequence, the numbering function and its
    deferred, always-enabled trigger on `events`; down to 0230 all are gone (emit's
    numbering is the old one again), up again they are back."""
    new = _migration("2026-12-07-0240_event_numbers_at_commit.py")
    engine = create_async_engine(db.url)

    async def state() -> tuple[bool, tuple[Any, ...] | None]:
        async with engine.connect() as conn:
            indexes = await conn.run_sync(
                lambda sync: {i["name"] for i in inspect(sync).get_indexes("webhook_deliveries")}
            )
            objects = None
            if db.engine == "postgresql":
                row = (
                    await conn.execute(
                        text(
                            "SELECT (SELECT prosrc FROM pg_proc"
                            "        WHERE proname = 'accord_number_event_at_commit'),"
                            " (SELECT tgenabled::text || tgdeferrable::text || tginitdeferred::text"
                            "  FROM pg_trigger WHERE tgname = 'events_number_at_commit'),"
                            " to_regclass('event_seq_placeholders') IS NOT NULL"
                        )
                    )
                ).one()
                objects = tuple(row)
        return "ix_webhook_deliveries_event_id" in indexes, objects

    present = (_body(new.NUMBER), "Atruetrue", True) if db.engine == "postgresql" else None
    absent = (None, None, False) if db.engine == "postgresql" else None
    try:
        assert await state() == (True, present)
        await migrate.downgrade(engine, "0230")
        assert await state() == (False, absent)
        await migrate.upgrade(engine)
        assert await state() == (True, present)
        assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        await engine.dispose()
