"""One Alembic history on both engines: up from empty, down to empty, and the models
match the migrated schema (autogenerate finds no difference)."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from service import migrate
from service.db import Base
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
