"""One Alembic history on both engines: up from empty, down to empty, and the models
match the migrated schema (autogenerate finds no difference)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import inspect
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
