"""Crash (issue 4): SIGKILL the running service while audited writes are under load.
After the kill, every effect has its audit entry and every entry its effect (they
commit in one transaction), and the log still verifies. The writes under load are
referral deliveries (each a disclosure entry plus a timeline event) mixed with
subject creations."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.audit_format import GENESIS_PREV
from accord_client.merkle import leaf_hash, root_from_leaf_hashes
from sqlalchemy import select

from service.audit import tree
from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.clock import FrozenClock
from service.referrals.models import ReferralEvent
from service.subjects.models import Subject
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.processes import start_service, wait_until_healthy
from tests.support.world import TokenFactory, World


@pytest.mark.crash
async def test_H01_sigkill_under_load_leaves_no_effect_without_its_entry(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, key_dir: Path
) -> None:
    kit = await make_kit(client, world)
    referrals = [(await kit.send())["id"] for _ in range(4)]
    server, base = await start_service(db, key_dir)
    try:
        await wait_until_healthy(base, attempts=200)
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
            tokens = TokenFactory(world.tokens.settings, FrozenClock(datetime.now(UTC)))
            headers = tokens.headers(world.orgs["vsp"], Role.caseworker)
            shelter = tokens.headers(world.orgs["shelter"], Role.caseworker)
            created: list[str] = []
            delivered: list[int] = []  # disclosure_seq of every acknowledged delivery
            enough = asyncio.Event()

            async def client_loop() -> None:
                while True:
                    try:
                        r = await http.post("/v1/subjects", json={}, headers=headers)
                    except httpx.TransportError:
                        return
                    if r.status_code == 201:
                        created.append(r.json()["id"])
                        if len(created) >= 40:
                            enough.set()

            async def delivery_loop() -> None:
                while True:
                    target = random.choice(referrals)
                    try:
                        r = await http.post(f"/v1/referrals/{target}/deliver", headers=shelter)
                    except httpx.TransportError:
                        return
                    if r.status_code == 200:
                        delivered.append(r.json()["disclosure_seq"])

            clients = [asyncio.create_task(client_loop()) for _ in range(3)]
            clients += [asyncio.create_task(delivery_loop()) for _ in range(5)]
            await asyncio.wait_for(enough.wait(), timeout=60)
            server.send_signal(signal.SIGKILL)
            await server.wait()
            await asyncio.gather(*clients)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()

    async with app.state.sessionmaker() as session:
        subjects = {str(s) for s in (await session.scalars(select(Subject.id))).all()}
        entries = list((await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all())
        audited = {e.subject_ref for e in entries if e.action == "subject.created"}
        # Every acknowledged creation survived, and effects and entries match exactly.
        assert set(created) <= subjects
        assert audited == subjects
        # Deliveries: each committed one has its disclosure entry and its timeline
        # event, and each acknowledged one is among them.
        disclosures = {
            e.seq
            for e in entries
            if e.action in {"disclosure", "withheld"}
            and "referral_id" in json.loads(e.body)["details"]
        }
        events = {
            ev.audit_seq
            for ev in (await session.scalars(select(ReferralEvent))).all()
            if ev.event in {"delivered", "delivered_withheld"}
        }
        assert len(delivered) > 0
        assert set(delivered) <= disclosures
        assert events == disclosures
        assert [e.seq for e in entries] == list(range(len(entries)))
        prev = GENESIS_PREV
        leaves = []
        for entry in entries:
            assert json.loads(entry.body)["prev"] == prev
            leaves.append(leaf_hash(entry.body.encode()))
            prev = leaves[-1].hex()
        assert await tree.root_at(session, len(leaves)) == root_from_leaf_hashes(leaves)
    # Restarted without manual repair: ready, and the SQLite file is intact.
    assert (await client.get("/readyz")).status_code == 200
    if db.path is not None:
        conn = sqlite3.connect(db.path)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        finally:
            conn.close()
