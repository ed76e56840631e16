"""Work that every node runs in the background, done once for the federation
(issue 26): three nodes each run the webhook dispatcher and the retention sweep
on one PostgreSQL database; a loopback receiver counts every webhook request,
and the audit log counts every shredding."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.scale.conftest import StartCluster
from tests.scale.federation import entries
from tests.scale.receiver import receiving

pytestmark = [pytest.mark.slow, pytest.mark.pg_only]

REFERRALS = 6


async def test_dispatcher_and_sweep_do_not_double_process(start_cluster: StartCluster) -> None:
    settings = {
        "ACCORD_REFERRAL_RETENTION_DAYS": 0,  # a delivered referral is due at once
        "ACCORD_SWEEP_INTERVAL_SECONDS": 1,
        "ACCORD_WEBHOOK_DISPATCH_INTERVAL_SECONDS": 0.05,
    }
    async with receiving() as receiver, start_cluster(3, **settings) as (cluster, fed):
        hooks = {"vsp": ["referral.delivered"], "shelter": ["referral.sent"]}
        for org, types in hooks.items():
            await fed.post(
                f"/v1/organizations/{fed.orgs[org]}/webhooks",
                {"url": receiver.url, "event_types": types},
                f"{org}_admin",
            )
        referrals = []
        async with httpx.AsyncClient(timeout=30) as client:
            for i in range(REFERRALS):  # each step on another node than the one before
                node = cluster.nodes[i % 3].base
                subject = await fed.subject(base=node)
                consent = await fed.consent(subject, base=node)
                referral = await fed.referral(
                    subject, consent, base=cluster.nodes[(i + 1) % 3].base
                )
                r = await client.post(
                    f"{cluster.nodes[(i + 2) % 3].base}/v1/referrals/{referral}/deliver",
                    headers=fed.headers("shelter"),
                )
                assert r.status_code == 200, r.text
                referrals.append(referral)
        # One sent and one delivered event per referral; then two more sweep
        # intervals and many dispatcher turns, in which a second copy would come.
        await receiver.wait_for(2 * REFERRALS, seconds=20)
        await asyncio.sleep(2.5)
        log = entries(await fed.export())
    kinds = Counter(kind for _, kind in receiver.received)
    assert kinds == {"referral.sent": REFERRALS, "referral.delivered": REFERRALS}
    assert set(receiver.counts().values()) == {1}  # each event id arrived once
    shredded = Counter(
        e["details"]["referral_id"] for e in log if e["action"] == "referral.shredded"
    )
    assert shredded == dict.fromkeys(referrals, 1)
