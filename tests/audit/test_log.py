"""The audit log in the database, on both engines: appends in the caller's
transaction, gap-free under concurrency, hash chain and Merkle tree that verify
from the stored nodes, signed checkpoints, and the database refusing changes (F01)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from accord_client.audit_format import GENESIS_PREV
from accord_client.checkpoint import verify_checkpoint
from accord_client.merkle import (
    leaf_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from service.audit import tree
from service.audit.log import AuditEvent, append
from service.audit.models import AuditEntry
from tests.support.databases import TestDatabase


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        action="test.event",
        actor=None,
        actor_label="test",
        subject_ref=f"subject-{i % 3}",
        details={"n": i, "categories": ["contact"]},
    )


async def _append_each(app: Any, count: int) -> None:
    for i in range(count):
        async with app.state.sessionmaker() as session:
            await append(session, _event(i), clock=app.state.clock)
            await session.commit()


async def _entries(app: Any) -> list[AuditEntry]:
    async with app.state.sessionmaker() as session:
        return list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())


def _check_chain(entries: list[AuditEntry]) -> list[bytes]:
    assert [e.seq for e in entries] == list(range(len(entries)))
    prev = GENESIS_PREV
    leaves = []
    for entry in entries:
        document = json.loads(entry.body)
        assert document["seq"] == entry.seq
        assert document["prev"] == prev
        recomputed = leaf_hash(entry.body.encode("utf-8"))
        assert recomputed == bytes(entry.leaf_hash)
        prev = recomputed.hex()
        leaves.append(recomputed)
    return leaves


async def test_appends_chain_and_the_stored_tree_proves_every_entry(app: Any) -> None:
    await _append_each(app, 37)
    leaves = _check_chain(await _entries(app))
    async with app.state.sessionmaker() as session:
        for size in (1, 2, 5, 16, 17, 37):
            root = await tree.root_at(session, size)
            assert root == root_from_leaf_hashes(leaves[:size])
            for index in range(size):
                proof = await tree.prove_inclusion(session, index, size)
                assert verify_inclusion(leaves[index], index, size, proof, root)
        for old, new in ((1, 37), (5, 16), (16, 17), (17, 37), (36, 37), (37, 37)):
            proof = await tree.prove_consistency(session, old, new)
            assert verify_consistency(
                old,
                new,
                root_from_leaf_hashes(leaves[:old]),
                root_from_leaf_hashes(leaves[:new]),
                proof,
            )


async def test_an_append_rolls_back_with_its_transaction(app: Any) -> None:
    await _append_each(app, 2)
    async with app.state.sessionmaker() as session:
        await append(session, _event(99), clock=app.state.clock)
        await session.rollback()
    await _append_each(app, 1)
    entries = await _entries(app)
    _check_chain(entries)
    assert len(entries) == 3
    assert all(json.loads(e.body)["details"]["n"] != 99 for e in entries)


async def test_concurrent_appends_are_gap_free(app: Any, db: TestDatabase) -> None:
    async def one(i: int) -> None:
        async with app.state.sessionmaker() as session:
            await append(session, _event(i), clock=app.state.clock)
            await asyncio.sleep(0)  # let the others interleave while the lock is held
            await session.commit()

    await asyncio.gather(*(one(i) for i in range(24)))
    leaves = _check_chain(await _entries(app))
    assert len(leaves) == 24
    async with app.state.sessionmaker() as session:
        assert await tree.root_at(session, 24) == root_from_leaf_hashes(leaves)


async def test_signed_checkpoint_verifies_with_the_published_key(app: Any) -> None:
    await _append_each(app, 5)
    origin = app.state.settings.audit_origin
    async with app.state.sessionmaker() as session:
        note = await tree.signed_checkpoint(
            session, signer=app.state.keyring.checkpoint, origin=origin
        )
    leaves = _check_chain(await _entries(app))
    checkpoint = verify_checkpoint(
        note, name=origin, public_key=app.state.keyring.checkpoint.public_key, origin=origin
    )
    assert checkpoint.size == 5
    assert checkpoint.root_hash == root_from_leaf_hashes(leaves)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET action = 'x'",
        "DELETE FROM audit_entries",
        "UPDATE audit_nodes SET level = level",
        "DELETE FROM audit_nodes",
        "DELETE FROM audit_head",
        "UPDATE audit_checkpoints SET note = 'x'",
        "DELETE FROM audit_checkpoints",
        "TRUNCATE audit_entries",
        "TRUNCATE audit_nodes",
    ],
)
async def test_F01_the_database_refuses_changes_to_the_log(
    app: Any, db: TestDatabase, statement: str
) -> None:
    if statement.startswith("TRUNCATE") and db.engine == "sqlite":
        pytest.skip("SQLite has no TRUNCATE (DELETE is covered)")
    await _append_each(app, 3)
    async with app.state.sessionmaker() as session:
        await tree.record_checkpoint(
            session,
            signer=app.state.keyring.checkpoint,
            origin=app.state.settings.audit_origin,
            clock=app.state.clock,
        )
        await session.commit()
    before = db.dump()
    async with app.state.sessionmaker() as session:
        with pytest.raises(DBAPIError, match="append-only"):
            await session.execute(text(statement))
        await session.rollback()
    assert db.dump() == before


async def test_periodic_checkpoints_are_kept_once_per_size(app: Any) -> None:
    signer = app.state.keyring.checkpoint
    origin = app.state.settings.audit_origin

    async def record() -> Any:
        async with app.state.sessionmaker() as session:
            row = await tree.record_checkpoint(
                session, signer=signer, origin=origin, clock=app.state.clock
            )
            await session.commit()
            return row

    assert await record() is None  # an empty log has nothing to sign
    await _append_each(app, 3)
    first = await record()
    assert first is not None
    assert first.size == 3
    assert verify_checkpoint(first.note, name=origin, public_key=signer.public_key).size == 3
    assert await record() is None  # nothing appended since
    await _append_each(app, 1)
    second = await record()
    assert second is not None
    assert second.size == 4


async def test_F01_a_replica_session_is_refused_too(app: Any, db: TestDatabase) -> None:
    """A session in the `replica` replication role skips ordinary triggers; the
    protective ones are ENABLE ALWAYS (migration 0120), so the log, the consent
    versions and the referral timeline still refuse changes, and a change to an
    organization still moves the policy epoch."""
    if db.engine != "postgresql":
        pytest.skip("SQLite has no replication role")
    await _append_each(app, 2)
    before = db.dump()
    # Row triggers need rows (the log has them); TRUNCATE triggers fire per statement.
    for statement, refusal in (
        ("UPDATE audit_entries SET action = 'x'", "the audit log is append-only"),
        ("DELETE FROM audit_nodes", "the audit log is append-only"),
        ("DELETE FROM audit_head", "the audit log is append-only"),
        ("TRUNCATE audit_entries", "the audit log is append-only"),
        ("TRUNCATE alleged_abusers", "consent records are immutable"),
        ("TRUNCATE referral_events", "the referral timeline is append-only"),
    ):
        async with app.state.sessionmaker() as session:
            await session.execute(text("SET LOCAL session_replication_role = replica"))
            with pytest.raises(DBAPIError, match=refusal):
                await session.execute(text(statement))
            await session.rollback()
    assert db.dump() == before
    async with app.state.sessionmaker() as session:
        epoch = await session.scalar(text("SELECT policy_epoch FROM audit_head"))
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(text("UPDATE organizations SET sector = sector"))
        await session.commit()
    async with app.state.sessionmaker() as session:
        assert await session.scalar(text("SELECT policy_epoch FROM audit_head")) == epoch + 1
