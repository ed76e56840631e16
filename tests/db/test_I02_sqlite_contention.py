"""SECURITY-TESTS I02, SQLite writer contention: 32 concurrent writers against the
service (a separate process, as deployed), while another process appends to the
same database file, so that writers meet both in the service's pool and at
SQLite's file lock. No request gets a 500 ("database is locked" or any other):
each succeeds or gets a 503 problem with `Retry-After`; every 201 is a subject in
the database with its audit entry, and there is no subject without one; the log
stays contiguous. The row asks for 60 s; CI runs 5 s, `ACCORD_I02_SECONDS=60`
runs the row's length. (SQLite only: PostgreSQL has row locks, not a file lock.)"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.clock import FrozenClock
from service.subjects.models import Subject
from tests.support.databases import TestDatabase
from tests.support.processes import start_service, wait_until_healthy
from tests.support.world import TokenFactory, World

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 32
SECONDS = float(os.environ.get("ACCORD_I02_SECONDS", "5"))


@pytest.mark.crash
async def test_I02_32_writers_on_sqlite_get_201_or_503_never_500(
    app: Any, world: World, db: TestDatabase, key_dir: Path
) -> None:
    if db.engine != "sqlite":
        pytest.skip("SQLite only: the file lock is what this row contends for")
    server, base = await start_service(db, key_dir)
    other_writer: asyncio.subprocess.Process | None = None
    statuses: Counter[int] = Counter()
    created: list[str] = []
    try:
        await wait_until_healthy(base, attempts=200)
        tokens = TokenFactory(world.tokens.settings, FrozenClock(datetime.now(UTC)))
        headers = tokens.headers(world.orgs["vsp"], Role.caseworker)
        other_writer = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.audit.append_worker", db.url, "0", "1000000", "1",
            cwd=ROOT,
        )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + SECONDS
        limits = httpx.Limits(max_connections=WRITERS)
        async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as http:

            async def writer() -> None:
                while asyncio.get_running_loop().time() < deadline:
                    r = await http.post("/v1/subjects", json={}, headers=headers)
                    statuses[r.status_code] += 1
                    if r.status_code == 201:
                        created.append(r.json()["id"])
                    elif r.status_code == 503:
                        assert int(r.headers["retry-after"]) > 0
                        assert r.headers["content-type"].startswith("application/problem+json")
                    else:
                        pytest.fail(f"{r.status_code}: {r.text[:300]}")

            await asyncio.gather(*(writer() for _ in range(WRITERS)))
    finally:
        for proc in (other_writer, server):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert statuses[201] > 0, statuses
    async with app.state.sessionmaker() as session:
        subjects = {str(s) for s in (await session.scalars(select(Subject.id))).all()}
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    audited = {e.subject_ref for e in entries if e.action == "subject.created"}
    assert set(created) <= subjects
    assert audited == subjects  # no subject without its entry, no entry without it
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert any(e.action == "test.process" for e in entries)  # the other writer wrote too
