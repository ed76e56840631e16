"""SECURITY-TESTS I01, several processes appending at once (issue 4 "Concurrency"):
three processes of eight concurrent appenders each, every appender on its own
connection; the sequence stays contiguous and the chain and tree verify, on both
engines. The row asks for 10,000 entries; CI appends 1,200 (50 per appender) to
stay quick, and `ACCORD_I01_PER_APPENDER=417` runs the row's full size."""

from __future__ import annotations

import asyncio
import json
import os
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
PROCESSES = 3
TASKS = 8
EACH = int(os.environ.get("ACCORD_I01_PER_APPENDER", "50"))


async def test_I01_several_processes_append_gap_free(app: Any, db: TestDatabase) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.audit.append_worker",
            db.url,
            str(w),
            str(EACH),
            str(TASKS),
            cwd=ROOT,
        )
        for w in range(PROCESSES)
    ]
    for proc in procs:
        assert await asyncio.wait_for(proc.wait(), timeout=600) == 0
    async with app.state.sessionmaker() as session:
        entries = list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())
        assert [e.seq for e in entries] == list(range(PROCESSES * TASKS * EACH))
        prev = GENESIS_PREV
        leaves = []
        for entry in entries:
            assert json.loads(entry.body)["prev"] == prev
            leaf = leaf_hash(entry.body.encode())
            leaves.append(leaf)
            prev = leaf.hex()
        assert await tree.root_at(session, len(leaves)) == root_from_leaf_hashes(leaves)
    # Every appender's entries, each exactly once, in the order it appended them.
    seen: dict[tuple[str, int], list[int]] = {}
    for entry in entries:
        body = json.loads(entry.body)
        key = (body["actor"]["principal"], body["details"]["task"])
        seen.setdefault(key, []).append(body["details"]["i"])
    expected = {(f"worker-{w}", t) for w in range(PROCESSES) for t in range(TASKS)}
    assert set(seen) == expected
    assert all(order == list(range(EACH)) for order in seen.values())
