"""The Merkle tree as stored: roots, inclusion and consistency proofs, and signed
checkpoints, reading O(log n) stored subtree nodes (never the whole log)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from accord_client.checkpoint import Checkpoint, sign_note
from accord_client.merkle import (
    EMPTY_ROOT,
    HashRange,
    consistency_proof,
    inclusion_proof,
    node_hash,
)
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from service.audit.models import AuditCheckpoint, AuditHead, AuditNode
from service.clock import Clock
from service.crypto import Signer

log = logging.getLogger("accord.audit")

Coordinate = tuple[int, int]  # (level, idx)


def perfect_pieces(start: int, end: int) -> list[Coordinate]:
    """The stored nodes whose hashes make up MTH(leaves[start:end]), for the ranges
    that the RFC 9162 recursion produces (start aligned to a power of two >= n)."""
    n = end - start
    if n <= 0:
        raise ValueError("empty range")
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        return [(level, start >> level)]
    k = 1 << ((n - 1).bit_length() - 1)
    return perfect_pieces(start, start + k) + perfect_pieces(start + k, end)


def _hash_range(nodes: dict[Coordinate, bytes]) -> HashRange:
    def subtree(start: int, end: int) -> bytes:
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            level = n.bit_length() - 1
            return nodes[(level, start >> level)]
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(subtree(start, start + k), subtree(start + k, end))

    return subtree


def _recorder(needed: set[Coordinate]) -> HashRange:
    def subtree(start: int, end: int) -> bytes:
        needed.update(perfect_pieces(start, end))
        return bytes(32)

    return subtree


# Indexes per query (one bound parameter each, plus the level), well under
# SQLite's and asyncpg's parameter limits.
FETCH_CHUNK = 1000


async def _fetch(session: AsyncSession, coords: Iterable[Coordinate]) -> dict[Coordinate, bytes]:
    """The stored nodes at these coordinates, one query per level (and chunk):
    `level = ? AND idx IN (...)` searches the primary key on both databases, where a
    row-value `(level, idx) IN (...)` makes SQLite scan the whole table (measured:
    0.8 s per query at 10^6 entries)."""
    by_level: dict[int, list[int]] = {}
    for level, idx in set(coords):
        by_level.setdefault(level, []).append(idx)
    found: dict[Coordinate, bytes] = {}
    wanted = 0
    for level, indexes in sorted(by_level.items()):
        indexes.sort()
        wanted += len(indexes)
        for start in range(0, len(indexes), FETCH_CHUNK):
            rows = await session.execute(
                select(AuditNode.idx, AuditNode.hash).where(
                    AuditNode.level == level,
                    AuditNode.idx.in_(indexes[start : start + FETCH_CHUNK]),
                )
            )
            found.update(((level, idx), bytes(h)) for idx, h in rows)
    if len(found) != wanted:
        raise LookupError("audit tree nodes missing")
    return found


async def tree_size(session: AsyncSession) -> int:
    # A Core read: always the row as this transaction sees it, never an identity-map copy.
    size = await session.scalar(select(AuditHead.size).where(AuditHead.id == 1))
    return int(size) if size is not None else 0


async def root_at(session: AsyncSession, size: int) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    nodes = await _fetch(session, perfect_pieces(0, size))
    return _hash_range(nodes)(0, size)


async def root_at_range(session: AsyncSession, start: int, end: int) -> bytes:
    nodes = await _fetch(session, perfect_pieces(start, end))
    return _hash_range(nodes)(start, end)


async def prove_inclusion(session: AsyncSession, index: int, size: int) -> list[bytes]:
    needed: set[Coordinate] = set()
    inclusion_proof(index, size, _recorder(needed))
    return inclusion_proof(index, size, _hash_range(await _fetch(session, needed)))


class InclusionProver:
    """Inclusion proofs of many entries against one tree size, for exports: each call
    proves a batch (in ascending order) with one node query per FETCH_CHUNK
    coordinates, reusing the nodes of the previous batch (the upper levels and the
    tree's right edge are shared by neighbouring entries). Memory is bounded by one
    batch: nothing accumulates over the export."""

    def __init__(self, session: AsyncSession, size: int) -> None:
        self.session = session
        self.size = size
        self._nodes: dict[Coordinate, bytes] = {}

    async def prove(self, indexes: Iterable[int]) -> list[list[bytes]]:
        wanted = list(indexes)
        needed: set[Coordinate] = set()
        recorder = _recorder(needed)
        for index in wanted:
            inclusion_proof(index, self.size, recorder)
        kept = {c: h for c, h in self._nodes.items() if c in needed}
        kept.update(await _fetch(self.session, needed.difference(kept)))
        self._nodes = kept
        memo: dict[tuple[int, int], bytes] = {}
        plain = _hash_range(kept)

        def subtree(start: int, end: int) -> bytes:
            found = memo.get((start, end))
            if found is None:
                found = memo[(start, end)] = plain(start, end)
            return found

        return [inclusion_proof(index, self.size, subtree) for index in wanted]


async def prove_consistency(session: AsyncSession, old_size: int, new_size: int) -> list[bytes]:
    needed: set[Coordinate] = set()
    consistency_proof(old_size, new_size, _recorder(needed))
    return consistency_proof(old_size, new_size, _hash_range(await _fetch(session, needed)))


async def signed_checkpoint(session: AsyncSession, *, signer: Signer, origin: str) -> str:
    """The latest checkpoint, signed by the service's checkpoint key (key name = origin)."""
    return await signed_checkpoint_at(
        session, await tree_size(session), signer=signer, origin=origin
    )


async def signed_checkpoint_at(
    session: AsyncSession, size: int, *, signer: Signer, origin: str
) -> str:
    root = await root_at(session, size)
    return sign_note(
        Checkpoint(origin, size, root).body(),
        name=origin,
        public_key=signer.public_key,
        sign=signer.sign,
    )


async def record_checkpoint(
    session: AsyncSession,
    *,
    signer: Signer,
    origin: str,
    clock: Clock,
    min_age: float = 0.0,
) -> AuditCheckpoint | None:
    """Sign and keep a checkpoint of the current tree, unless one of this size exists
    (nothing was appended since) or, with `min_age` (seconds), the latest checkpoint
    is younger than that: several app nodes on one database then write one
    checkpoint per interval between them, not one each. On PostgreSQL the writers
    take turns through a transaction-scoped advisory lock taken without waiting (a
    node that finds it held skips: another is writing); SQLite has one writer."""
    if session.get_bind().dialect.name == "postgresql":
        got = await session.scalar(
            text("SELECT pg_try_advisory_xact_lock(('audit_checkpoints'::regclass)::oid::int, 0)")
        )
        if not got:
            return None
    if min_age > 0:
        latest = await session.scalar(select(func.max(AuditCheckpoint.created_at)))
        if latest is not None and (clock.now() - latest).total_seconds() < min_age:
            return None
    size = await tree_size(session)
    if size == 0 or await session.get(AuditCheckpoint, size) is not None:
        return None
    note = await signed_checkpoint_at(session, size, signer=signer, origin=origin)
    row = AuditCheckpoint(
        size=size, root_hash=await root_at(session, size), note=note, created_at=clock.now()
    )
    session.add(row)
    await session.flush()
    return row


async def checkpoint_loop(
    factory: async_sessionmaker[AsyncSession],
    *,
    signer: Signer,
    origin: str,
    clock: Clock,
    interval: float,
) -> None:
    """The periodic checkpoint task (one per process). Nodes on one database share
    the interval: a checkpoint younger than nine tenths of it means another node
    wrote this interval's (`record_checkpoint`'s `min_age`); a race for the same size
    is harmless besides: one insert wins, the other is rolled back."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with factory() as session:
                row = await record_checkpoint(
                    session, signer=signer, origin=origin, clock=clock, min_age=0.9 * interval
                )
                await session.commit()
            if row is not None:
                log.info("checkpoint signed", extra={"event": "audit.checkpoint", "seq": row.size})
        except (IntegrityError, OperationalError, LookupError) as exc:
            log.warning(
                "checkpoint not recorded",
                extra={"event": "audit.checkpoint_failed", "error_type": type(exc).__name__},
            )
