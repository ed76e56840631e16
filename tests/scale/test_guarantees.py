"""Guarantees that must hold across app nodes (issue 26, "Several app nodes on one
PostgreSQL"): real `accord serve` processes, one worker each, on one PostgreSQL
database and one Redis, behind HAProxy (tests/scale/cluster.py).

- a revocation answered by node 1 withholds the very next delivery through node 2,
  whose release inputs were cached a moment before, and deliveries racing it on
  other nodes are ordered by it in the log;
- rate limits are counted once for the federation, not once per node;
- checkpoints are written at most once per interval by all nodes together, and
  every one of them is a prefix of the one log (the client's verifier checks)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from accord_client.audit_verify import SignedCheckpoint
from accord_client.checkpoint import verify_checkpoint
from sqlalchemy.engine import make_url

from tests.scale.cluster import Cluster
from tests.scale.conftest import shared_cluster
from tests.scale.federation import Federation, entries

# One cluster of three nodes for the tests of this module (started once: each start
# costs seconds), with a checkpoint a second and four access links a minute.
pytestmark = [pytest.mark.slow, pytest.mark.pg_only, pytest.mark.asyncio(loop_scope="module")]
Running = tuple[Cluster, Federation]
INTERVAL = 1.0
CHECKPOINTS = "SELECT size, root_hash, note, created_at FROM audit_checkpoints ORDER BY size"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def nodes(
    pg_template: str | None, key_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Running]:
    settings = {
        "ACCORD_AUDIT_CHECKPOINT_INTERVAL_SECONDS": INTERVAL,
        "ACCORD_RATE_LIMIT_ACCESS_LINKS": "4/minute",
    }
    workdir = tmp_path_factory.mktemp("cluster")
    async with shared_cluster(pg_template, key_dir, workdir, 3, **settings) as running:
        yield running


async def _query(url: str, sql: str) -> list[asyncpg.Record]:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql)
        return rows
    finally:
        await conn.close()


async def test_revocation_through_one_node_withholds_the_next_delivery_through_another(
    nodes: Running,
) -> None:
    cluster, fed = nodes
    one, two = (node.base for node in cluster.nodes[:2])
    revoked_before = _revocations(entries(await fed.export()))
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(4):
            subject = await fed.subject(base=one)
            consent = await fed.consent(subject, base=one)
            referral = await fed.referral(subject, consent, base=one)
            deliver = f"{two}/v1/referrals/{referral}/deliver"
            before = await client.post(deliver, headers=fed.headers("shelter"))
            assert before.status_code == 200, before.text
            assert before.json()["released"]  # node 2 decided (and cached its inputs)
            revoked = await client.post(
                f"{one}/v1/consents/{consent}/revoke",
                json={"reason": "withdrawn by phone"},
                headers=fed.headers("vsp"),
            )
            assert revoked.status_code == 200, revoked.text
            after = await client.post(deliver, headers=fed.headers("shelter"))
            assert after.status_code == 200, after.text
            assert after.json()["released"] == []
            assert after.json()["withheld"]
            # In the log, the revocation comes between the two disclosures.
            assert before.json()["disclosure_seq"] < after.json()["disclosure_seq"]
    assert _revocations(entries(await fed.export())) == revoked_before + 4


async def test_deliveries_racing_a_revocation_on_another_node_are_ordered_by_it(
    nodes: Running,
) -> None:
    """Deliveries through nodes 2 and 3 while node 1 revokes: each delivery that
    released fields is before the revocation in the log, each one after it released
    nothing (guarantee 2, across processes)."""
    cluster, fed = nodes
    subject = await fed.subject()
    consent = await fed.consent(subject)
    referral = await fed.referral(subject, consent)
    answers: list[dict[str, Any]] = []
    revoked = asyncio.Event()

    async def deliveries(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for _ in range(200):  # bounded; stops a few deliveries after the revocation
                r = await client.post(
                    f"/v1/referrals/{referral}/deliver", headers=fed.headers("shelter")
                )
                assert r.status_code == 200, r.text
                answers.append(r.json())
                if revoked.is_set() and not r.json()["released"]:
                    return

    async def revoke() -> None:
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=cluster.nodes[0].base, timeout=30) as client:
            r = await client.post(
                f"/v1/consents/{consent}/revoke",
                json={"reason": "withdrawn by phone"},
                headers=fed.headers("vsp"),
            )
        assert r.status_code == 200, r.text
        revoked.set()

    await asyncio.gather(revoke(), *(deliveries(n.base) for n in cluster.nodes[1:]))
    log = entries(await fed.export())
    (at,) = [
        e["seq"]
        for e in log
        if e["action"] == "consent.revoked" and e["details"]["consent_id"] == consent
    ]
    released = [a["disclosure_seq"] for a in answers if a["released"]]
    withheld = [a["disclosure_seq"] for a in answers if not a["released"]]
    assert released  # some deliveries came before the revocation
    assert withheld  # and some after it
    assert max(released) < at < min(withheld)


def _revocations(log: list[dict[str, Any]]) -> int:
    return sum(entry["action"] == "consent.revoked" for entry in log)


async def test_rate_limits_are_shared_by_the_nodes(nodes: Running) -> None:
    cluster, fed = nodes
    subject = await fed.subject()
    path = f"/v1/subjects/{subject}/access-links"
    statuses = []
    async with httpx.AsyncClient(timeout=30) as client:
        for i in range(6):  # alternating: 3 on each node, under 4 on either
            node = cluster.nodes[i % 2]
            r = await client.post(f"{node.base}{path}", json={}, headers=fed.headers("vsp"))
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1
    assert statuses == [201, 201, 201, 201, 429, 429]


async def _checkpoints_under_load(
    running: Running, intervals: int
) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    """Deliveries through the balancer for `intervals` checkpoint intervals (1 s):
    (every stored checkpoint, those written during the load), the log exported and
    verified against every stored checkpoint (the verifier raises EquivocationError
    if two disagree, VerificationError if one is not a prefix of the log)."""
    cluster, fed = running
    subject = await fed.subject()
    consent = await fed.consent(subject)
    referral = await fed.referral(subject, consent)
    deliver = f"/v1/referrals/{referral}/deliver"
    url = fed.settings.database_url
    started = (await _query(url, "SELECT now() AS t"))[0]["t"]
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=cluster.base, timeout=30) as client:

        async def load() -> None:
            while time.monotonic() - began < intervals * INTERVAL:
                r = await client.post(deliver, headers=fed.headers("shelter"))
                assert r.status_code == 200, r.text
                await asyncio.sleep(0.02)

        await asyncio.gather(*(load() for _ in range(3)))
    rows = await _query(url, CHECKPOINTS)
    key, origin = fed.checkpoint_key(), fed.settings.audit_origin
    older = []
    for row in rows:
        checkpoint = verify_checkpoint(row["note"], name=origin, public_key=key, origin=origin)
        assert checkpoint.size == row["size"]
        assert checkpoint.root_hash == bytes(row["root_hash"])
        older.append(SignedCheckpoint(checkpoint, row["note"]))
    verified = fed.verify(await fed.export(), older=older)
    assert set(verified.prefix_roots) >= {row["size"] for row in rows}
    return rows, [row for row in rows if row["created_at"] >= started]


async def test_checkpoints_of_several_nodes_never_conflict(nodes: Running) -> None:
    rows, during = await _checkpoints_under_load(nodes, intervals=3)
    assert len(during) >= 2  # the log grew all along: checkpoints were written
    assert len({row["size"] for row in rows}) == len(rows)


async def test_checkpoints_once_per_interval_for_all_nodes(nodes: Running) -> None:
    intervals = 3
    _, during = await _checkpoints_under_load(nodes, intervals=intervals)
    # The log grew all along, so every interval has its checkpoint, and all nodes
    # together write one per interval (not one per node): at most one more than the
    # intervals of load (the window may cut two intervals in part).
    written = [(row["size"], row["created_at"].isoformat()) for row in during]
    assert intervals - 1 <= len(during) <= intervals + 1, written
    moments = [row["created_at"] for row in during]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(moments)]
    assert min(gaps) >= 0.5 * INTERVAL, gaps
