"""A balancer routes on `GET /readyz` (docs/deployment.md): a node that is fine must
keep answering 200 while the federation's appends go on through every node, or the
balancer takes healthy nodes out (with one node left: every request is the
balancer's 503)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests.scale.conftest import StartCluster

pytestmark = [pytest.mark.slow, pytest.mark.pg_only]

SECONDS = 4.0


async def test_readyz_stays_ready_under_appends_from_every_node(
    start_cluster: StartCluster,
) -> None:
    async with start_cluster(2) as (cluster, fed):
        subject = await fed.subject()
        consent = await fed.consent(subject)
        referral = await fed.referral(subject, consent)
        deliver = f"/v1/referrals/{referral}/deliver"
        probes: Counter[int] = Counter()
        began = time.monotonic()

        async def load() -> None:
            async with httpx.AsyncClient(base_url=cluster.base, timeout=30) as client:
                while time.monotonic() - began < SECONDS:
                    r = await client.post(deliver, headers=fed.headers("shelter"))
                    assert r.status_code == 200, r.text

        async def probe(base: str) -> None:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                while time.monotonic() - began < SECONDS:
                    probes[(await client.get("/readyz")).status_code] += 1
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(load() for _ in range(4)), *(probe(n.base) for n in cluster.nodes))
    assert probes[200] > 0
    assert set(probes) == {200}, probes
