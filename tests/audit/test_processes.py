"""Several processes appending at once (issue 4 "Concurrency"): the sequence stays
contiguous and the chain and tree verify, on both engines."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from accord_client.audit_format import GENESIS_PREV
from accord_client.merkle import leaf_hash, root_from_leaf_hashes
from sqlalchemy import select

from service.audit import tree
from service.audit.models import AuditEntry
from tests.support.databases import TestDatabase

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4
EACH = 15


async def test_several_processes_append_gap_free(app: Any, db: TestDatabase) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.audit.append_worker", db.url, str(w), str(EACH), cwd=ROOT
        )
        for w in range(PROCESSES)
    ]
    for proc in procs:
        assert await asyncio.wait_for(proc.wait(), timeout=120) == 0
    async with app.state.sessionmaker() as session:
        entries = list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())
        assert [e.seq for e in entries] == list(range(PROCESSES * EACH))
        prev = GENESIS_PREV
        leaves = []
        for entry in entries:
            assert json.loads(entry.body)["prev"] == prev
            leaf = leaf_hash(entry.body.encode())
            leaves.append(leaf)
            prev = leaf.hex()
        assert await tree.root_at(session, len(leaves)) == root_from_leaf_hashes(leaves)
    workers = {json.loads(e.body)["actor"]["principal"] for e in entries}
    assert workers == {f"worker-{w}" for w in range(PROCESSES)}
