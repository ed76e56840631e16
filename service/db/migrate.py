"""Running Alembic from the service: one history for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from service.settings import REPO_ROOT

MIGRATIONS_DIR = REPO_ROOT / "migrations"
# The advisory lock migrations hold (one bigint: apart from the policy lock's
# two-integer key, migration 0100).
MIGRATION_LOCK: Final = int.from_bytes(b"accord-m", "big") >> 1


def alembic_config(database_url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if database_url:
        cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


# Configuring a migration context logs two INFO lines ("Context impl ...", "Will
# assume ... DDL"): worth reading once at a migration, noise on every /readyz probe.
_context_log = logging.getLogger("alembic.runtime.migration")


def _current(connection: Connection) -> str | None:
    level = _context_log.level
    _context_log.setLevel(logging.WARNING)  # configure() does no I/O: nothing else runs
    try:
        context = MigrationContext.configure(connection)
    finally:
        _context_log.setLevel(level)
    return context.get_current_revision()


async def _serialize(conn: AsyncConnection) -> None:
    """PostgreSQL: wait for any other process migrating this database. Processes that
    start together (`accord serve --workers N` in development, or two nodes) would
    otherwise create the same tables at once and all but one fail; the later ones
    find the schema at head and do nothing. SQLite's BEGIN IMMEDIATE does the same."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await _serialize(conn)
        await conn.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await _serialize(conn)
        await conn.run_sync(_downgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def migrations_path() -> Path:
    return MIGRATIONS_DIR
