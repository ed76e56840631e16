"""Exports and the offline verifier: an oversight export verifies end to end; every
tampering case names the problem and the first bad entry; the CLI exits non-zero;
older checkpoints must be prefixes. Proof endpoints verify against checkpoints."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.audit_cli import app as audit_cli
from accord_client.audit_verify import (
    EquivocationError,
    SignedCheckpoint,
    VerificationError,
    verify_lines,
)
from accord_client.checkpoint import parse_verifier_key, verify_checkpoint
from accord_client.merkle import verify_consistency, verify_inclusion
from typer.testing import CliRunner

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.world import World


async def _export(client: httpx.AsyncClient, world: World) -> list[bytes]:
    r = await client.get("/v1/audit/export", headers=world.headers("oversight", Role.auditor))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/jsonl")
    return [line for line in r.content.split(b"\n") if line]


def _verify(app: Any, lines: list[bytes], **kw: Any) -> Any:
    return verify_lines(
        lines,
        public_key=app.state.keyring.checkpoint.public_key,
        origin=app.state.settings.audit_origin,
        **kw,
    )


async def test_an_oversight_export_verifies_and_is_itself_audited(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    lines = await _export(client, world)
    result = _verify(app, lines)
    actions = [json.loads(line)["action"] for line in lines[:-1]]
    assert result.size == len(actions) > 10
    assert actions[-1] == "audit.exported"
    assert {"organization.created", "collaboration.created", "member.added"} <= set(actions)


def _swap(lines: list[bytes], k: int) -> list[bytes]:
    out = list(lines)
    out[k], out[k + 1] = out[k + 1], out[k]
    return out


async def test_F_tampered_exports_name_the_first_bad_entry(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    lines = await _export(client, world)
    entries, checkpoint = lines[:-1], lines[-1]
    k = 4
    changed = entries[k].replace(b'"action":"', b'"action":"x', 1)
    cases: dict[str, tuple[list[bytes], int | None]] = {
        "changed": ([*entries[:k], changed, *entries[k + 1 :], checkpoint], k),
        "deleted": ([*entries[:k], *entries[k + 1 :], checkpoint], k),
        "swapped": ([*_swap(entries, k), checkpoint], k),
        "truncated": ([*entries[:-1], checkpoint], len(entries) - 1),
        "last-changed": (
            [
                *entries[:-1],
                entries[-1].replace(b'"format":"jsonl"', b'"format":"csv"'),
                checkpoint,
            ],
            len(entries) - 1,
        ),
    }
    for name, (tampered, seq) in cases.items():
        with pytest.raises(VerificationError) as exc:
            _verify(app, tampered)
        assert exc.value.seq == seq, (name, str(exc.value))


async def test_F_a_byte_changed_in_the_sqlite_file_is_found(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    if db.engine != "sqlite":
        pytest.skip("edits the SQLite file directly")
    assert db.path is not None
    conn = sqlite3.connect(db.path)
    try:
        # Bypass the triggers, as someone with the file would.
        conn.execute("DROP TRIGGER audit_entries_no_update")
        conn.execute(
            "UPDATE audit_entries SET body = replace(body, '\"v\":1', '\"v\":2') WHERE seq = 3"
        )
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(VerificationError) as exc:
        _verify(app, await _export(client, world))
    assert exc.value.seq == 3


async def test_F06_older_checkpoints_must_be_prefixes(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    auditor = world.headers("oversight", Role.auditor)
    old = (await client.get("/v1/audit/checkpoint", headers=auditor)).json()
    key = app.state.keyring.checkpoint.public_key
    origin = app.state.settings.audit_origin
    older = verify_checkpoint(old["note"], name=origin, public_key=key, origin=origin)
    # The published verifier key names the same key (C2SP signed-note text form).
    assert parse_verifier_key(old["verifier_key"]) == (origin, key)
    r = await client.post(
        "/v1/organizations",
        json={"name": "Later org", "sector": "healthcare"},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 201
    lines = await _export(client, world)
    assert _verify(app, lines, older=[older]).size > older.size
    # The server's consistency proof agrees with the offline check.
    new = (await client.get("/v1/audit/checkpoint", headers=auditor)).json()
    proof = (
        await client.get(
            f"/v1/audit/proof/consistency?from_size={old['tree_size']}&to_size={new['tree_size']}",
            headers=auditor,
        )
    ).json()["proof"]
    assert verify_consistency(
        old["tree_size"],
        new["tree_size"],
        base64.b64decode(old["root_hash"]),
        base64.b64decode(new["root_hash"]),
        [base64.b64decode(p) for p in proof],
    )
    # A rewritten history: an "older checkpoint" whose root is not this log's prefix.
    forged = type(older)(older.origin, older.size, bytes(32))
    with pytest.raises(EquivocationError, match="does not extend") as exc:
        _verify(app, lines, older=[SignedCheckpoint(forged, "forged note")])
    assert exc.value.evidence == ("forged note", json.loads(lines[-1])["checkpoint"])


async def test_inclusion_proofs_verify_against_the_checkpoint(
    client: httpx.AsyncClient, world: World
) -> None:
    auditor = world.headers("oversight", Role.auditor)
    checkpoint = (await client.get("/v1/audit/checkpoint", headers=auditor)).json()
    size = checkpoint["tree_size"]
    root = base64.b64decode(checkpoint["root_hash"])
    for seq in (0, size // 2, size - 1):
        body = (
            await client.get(
                f"/v1/audit/proof/inclusion?seq={seq}&tree_size={size}", headers=auditor
            )
        ).json()
        proof = [base64.b64decode(p) for p in body["proof"]]
        assert verify_inclusion(base64.b64decode(body["leaf_hash"]), seq, size, proof, root)
    too_big = await client.get(
        f"/v1/audit/proof/inclusion?seq=0&tree_size={size + 5}", headers=auditor
    )
    assert too_big.status_code == 422


async def test_auditors_see_their_own_organization_and_oversight_sees_all(
    client: httpx.AsyncClient, world: World
) -> None:
    mine = await client.get(
        "/v1/audit/entries?limit=200", headers=world.headers("vsp", Role.auditor)
    )
    everything = await client.get(
        "/v1/audit/entries?limit=200", headers=world.headers("oversight", Role.auditor)
    )
    vsp = str(world.orgs["vsp"])
    mine_items = mine.json()["items"]
    assert mine_items
    assert all(vsp in (e["actor"]["org"], e["counterpart"]) for e in mine_items)
    assert len(everything.json()["items"]) > len(mine_items)


async def test_the_cli_verifies_and_fails_loudly(
    app: Any, client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    lines = await _export(client, world)
    good = tmp_path / "export.jsonl"
    good.write_bytes(b"\n".join(lines) + b"\n")
    key = base64.b64encode(app.state.keyring.checkpoint.public_key).decode()
    origin = app.state.settings.audit_origin
    state = tmp_path / "state.json"
    args = ["verify", "--key", key, "--origin", origin, "--state", str(state)]
    ok = CliRunner().invoke(audit_cli, [*args, str(good)])
    assert ok.exit_code == 0, ok.output
    assert f"OK: {len(lines) - 1} entries" in ok.stdout
    assert json.loads(state.read_text())["checkpoints"][0]["size"] == len(lines) - 1
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join([*lines[:2], *lines[3:]]) + b"\n")
    failed = CliRunner().invoke(audit_cli, [*args, str(bad)])
    assert failed.exit_code == 1
    assert "entry 2" in failed.stderr
