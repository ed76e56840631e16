"""Statements run on the driver (service/db/direct.py) behave as `session.execute`
would: in the session's transaction, with SQLAlchemy's conversions, raising
SQLAlchemy's errors without their parameters. On both engines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.db import direct
from service.db.direct import DirectStatement
from service.db.engine import JSONType, UTCDateTime

_META = MetaData()
_PROBE = Table(
    "direct_probe",
    _META,
    Column("id", Uuid, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("at", UTCDateTime()),
    Column("doc", JSONType),
    Column("blob", LargeBinary),
    Column("label", String(32), unique=True),
)
_INSERT = DirectStatement(insert(_PROBE), keys=("id", "n", "at", "doc", "blob", "label"))
_READ = DirectStatement(
    select(_PROBE.c.id, _PROBE.c.n, _PROBE.c.at, _PROBE.c.doc, _PROBE.c.blob).where(
        _PROBE.c.id == bindparam("id")
    )
)
_COUNT_ABOVE = DirectStatement(
    select(_PROBE.c.id).where(_PROBE.c.n > 10, _PROBE.c.label == bindparam("label"))
)
_BUMP = DirectStatement(update(_PROBE).where(_PROBE.c.id == bindparam("b_id")), keys=("n",))
AT = datetime(2026, 11, 23, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
async def sessions(app: Any) -> async_sessionmaker[AsyncSession]:
    async with app.state.engine.begin() as conn:
        await conn.run_sync(_META.create_all)
    sessionmaker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    return sessionmaker


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "n": 1,
        "at": AT,
        "doc": {"k": ["é", 1]},
        "blob": b"\x00\xff",
        "label": None,
    }
    return row | overrides


async def test_a_direct_write_is_part_of_the_session_transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    kept, dropped = _row(), _row()
    async with sessions() as session:
        # The first statement of the session: the driver call begins the transaction.
        await direct.execute(session, _INSERT, dropped)
        await session.rollback()
    async with sessions() as session:
        await direct.execute(session, _INSERT, kept)
        await session.commit()
    async with sessions() as session:
        ids = set((await session.scalars(select(_PROBE.c.id))).all())
    assert ids == {kept["id"]}


async def test_values_convert_as_sqlalchemy_converts_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    written_direct, written_core = _row(n=2), _row(n=3)
    async with sessions() as session:
        await direct.execute(session, _INSERT, written_direct)
        await session.execute(insert(_PROBE), written_core)
        # Each path reads what the other wrote, in the same transaction.
        by_core = (
            await session.execute(
                select(_PROBE.c.id, _PROBE.c.n, _PROBE.c.at, _PROBE.c.doc, _PROBE.c.blob).where(
                    _PROBE.c.id == written_direct["id"]
                )
            )
        ).one()
        by_direct = await direct.fetch(session, _READ, {"id": written_core["id"]})
        await session.commit()
    expected = ("n", "at", "doc", "blob")
    assert tuple(by_core[1:]) == tuple(written_direct[k] for k in expected)
    assert by_direct == [tuple(written_core[k] for k in ("id", *expected))]
    assert by_direct[0][2].tzinfo is not None


async def test_literals_in_the_statement_and_updates(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    row = _row(label="probe")
    async with sessions() as session:
        await direct.execute(session, _INSERT, row)
        assert await direct.fetch(session, _COUNT_ABOVE, {"label": "probe"}) == []
        await direct.execute(session, _BUMP, {"b_id": row["id"], "n": 11})
        assert await direct.fetch(session, _COUNT_ABOVE, {"label": "probe"}) == [(row["id"],)]
        await session.commit()


async def test_many_parameter_sets_in_one_call(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    rows = [_row(n=i) for i in range(5)]
    async with sessions() as session:
        await direct.execute_many(session, _INSERT, rows)
        await session.commit()
    async with sessions() as session:
        assert sorted((await session.scalars(select(_PROBE.c.n))).all()) == [0, 1, 2, 3, 4]


async def test_errors_are_sqlalchemy_errors_without_parameters(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    secret = "planted-value-7c1e"
    async with sessions() as session:
        await direct.execute(session, _INSERT, _row(label="same", doc={"v": secret}))
        with pytest.raises(IntegrityError) as caught:
            await direct.execute(session, _INSERT, _row(label="same", doc={"v": secret}))
        assert secret not in str(caught.value)
        assert "hidden" in str(caught.value)
        await session.rollback()
    async with sessions() as session:
        assert (await session.scalars(select(_PROBE.c.id))).all() == []


def test_an_expanding_parameter_is_refused(app: Any) -> None:
    statement = DirectStatement(
        select(_PROBE.c.id).where(_PROBE.c.id.in_(bindparam("ids", expanding=True)))
    )
    with pytest.raises(ValueError, match="expanding"):
        statement.plan(app.state.engine.dialect)


def test_a_row_of_another_width_is_refused() -> None:
    """A row is converted column by column only if it has exactly the statement's
    columns (a short or long row would shift every value into the wrong one)."""
    from sqlalchemy.dialects import postgresql, sqlite

    for dialect in (postgresql.asyncpg.dialect(), sqlite.aiosqlite.dialect()):
        plan = _READ.plan(dialect)
        width = len(plan.results)
        assert len(plan.row([None] * width)) == width
        for wrong in (width - 1, width + 1):
            with pytest.raises(ValueError, match="columns"):
                plan.row([None] * wrong)
