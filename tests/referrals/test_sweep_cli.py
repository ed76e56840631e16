"""`accord sweep` crypto-shreds by hand what the running service's sweep would."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from service.cli import app as cli
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World


async def test_accord_sweep_shreds_delivered_referrals_past_retention(
    client: httpx.AsyncClient, world: World, db: TestDatabase, tmp_path: Path
) -> None:
    kit = await make_kit(client, world)
    delivered = await kit.send({"phone": "+1-555-0301"})
    assert (await kit.deliver(delivered["id"])).status_code == 200
    waiting = await kit.send({"phone": "+1-555-0302"})  # never delivered: kept
    env = {
        "ACCORD_ENVIRONMENT": "development",
        "ACCORD_DATABASE_URL": db.url,
        "ACCORD_KEY_DIR": str(tmp_path / "keys"),
        "ACCORD_REFERRAL_RETENTION_DAYS": "0",
    }
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["sweep"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"shredded": [delivered["id"]]}
    for referral, shredded in ((delivered, True), (waiting, False)):
        r = await client.get(f"/v1/referrals/{referral['id']}", headers=kit.staff("vsp"))
        assert (r.json()["shredded_at"] is not None) is shredded
    again = await asyncio.to_thread(CliRunner().invoke, cli, ["sweep"], env=env)
    assert json.loads(again.output) == {"shredded": []}
