"""Every stored countersignature verifies offline, by a verifier written here from
docs/agreements.md alone (tests/collaborations/jcs.py, `cryptography`), against the
directory's key history; and the client library's check agrees."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from accord_client import agreements
from accord_client.audit_cli import app as audit_cli
from typer.testing import CliRunner

from tests.collaborations import jcs
from tests.collaborations.support import flow, history, propose, sign, withdraw
from tests.support.world import World


async def _keys(client: httpx.AsyncClient, world: World, org_ids: set[str]) -> dict[str, Any]:
    out = {}
    for org_id in org_ids:
        r = await client.get(
            f"/v1/organizations/{org_id}/keys", headers=world.headers("vsp", "caseworker")
        )
        assert r.status_code == 200, r.text
        out[org_id] = r.json()
    return out


async def test_every_stored_signature_verifies_offline(
    client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    collab = str(world.collaboration_id)
    v2 = await propose(
        client, world, [flow("law_enforcement", ["investigation"], ["identity"])], b"v2", collab
    )
    for org in ("vsp", "police"):
        assert (await sign(client, world, org, v2, collab)).status_code == 201
    assert (await withdraw(client, world, "police", collab)).status_code == 200
    items = await history(client, world, "shelter", collab)
    signers = {s["org_id"] for i in items for s in i["signatures"]}
    keys = await _keys(client, world, signers)
    checked = 0
    previous = None
    for item in sorted(items, key=lambda i: i["version"]):
        data = jcs.message(collab, item)
        assert item["previous_sha256"] == previous
        assert jcs.sha256_hex(data) == item["sha256"]
        previous = item["sha256"]
        for sig in item["signatures"]:
            [key] = [k for k in keys[sig["org_id"]]["items"] if k["key_id"] == sig["key_id"]]
            assert key["kind"] == "signing"
            signed_at = datetime.fromisoformat(sig["signed_at"])
            assert datetime.fromisoformat(key["created_at"]) <= signed_at
            assert key["retired_at"] is None or signed_at < datetime.fromisoformat(
                key["retired_at"]
            )
            public = base64.b64decode(key["public_key"])
            assert jcs.verifies(public, data, base64.b64decode(sig["signature"]))
            checked += 1
    assert checked == 4 + 2  # v1 by every member, v2 by the VSP and the police
    # The client library's check, and the command line, agree.
    directory = [
        k for org, body in keys.items() for k in agreements.keys_from_history(org, body["items"])
    ]
    assert agreements.verify_history(collab, items, directory) == (checked, [])
    (tmp_path / "h.json").write_text(json.dumps({"collaboration_id": collab, "items": items}))
    (tmp_path / "k.json").write_text(json.dumps(keys))
    ok = CliRunner().invoke(
        audit_cli,
        ["agreements", "--history", str(tmp_path / "h.json"), "--keys", str(tmp_path / "k.json")],
    )
    assert ok.exit_code == 0, ok.output
    assert f"{checked} signatures" in ok.output
    # A tampered signature is named.
    items[0]["signatures"][0]["signature"] = base64.b64encode(bytes(64)).decode()
    (tmp_path / "h.json").write_text(json.dumps({"collaboration_id": collab, "items": items}))
    bad = CliRunner().invoke(
        audit_cli,
        ["agreements", "--history", str(tmp_path / "h.json"), "--keys", str(tmp_path / "k.json")],
    )
    assert bad.exit_code == 1
    assert "does not verify" in bad.output
