"""A member's client remembers the latest checkpoint and catches a rewritten or
forked log the next time it looks (DESIGN.md guarantee 4)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.checkpoint import Checkpoint, sign_note
from accord_client.witness import CheckpointWitness, SplitViewError

from service.auth.principals import Role
from tests.support.world import World


async def _checkpoint_and_proof(
    client: httpx.AsyncClient, headers: dict[str, str], from_size: int
) -> tuple[str, list[bytes]]:
    checkpoint = (await client.get("/v1/audit/checkpoint", headers=headers)).json()
    proof = (
        await client.get(
            f"/v1/audit/proof/consistency?from_size={from_size}&to_size={checkpoint['tree_size']}",
            headers=headers,
        )
    ).json()["proof"]
    return checkpoint["note"], [base64.b64decode(p) for p in proof]


async def test_a_growing_log_is_accepted_and_a_rewritten_one_is_caught(
    app: Any, client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    auditor = world.headers("vsp", Role.auditor)
    signer = app.state.keyring.checkpoint
    origin = app.state.settings.audit_origin
    witness = CheckpointWitness(tmp_path / "witness.json", origin, signer.public_key)
    note, _ = await _checkpoint_and_proof(client, auditor, 0)
    first = witness.observe(note)
    created = await client.post(
        "/v1/organizations",
        json={"name": "Later", "sector": "healthcare"},
        headers=world.headers("platform", Role.platform_admin),
    )
    assert created.status_code == 201
    note, proof = await _checkpoint_and_proof(client, auditor, first.size)
    second = witness.observe(note, proof)
    assert second.size > first.size
    assert witness.latest() == second

    # The operator signs a different tree of a larger size (history rewritten).
    forged = sign_note(
        Checkpoint(origin, second.size + 1, bytes(32)).body(),
        name=origin,
        public_key=signer.public_key,
        sign=signer.sign,
    )
    with pytest.raises(SplitViewError, match="does not extend"):
        witness.observe(forged, proof)
    shrunk = sign_note(
        Checkpoint(origin, 1, bytes(32)).body(),
        name=origin,
        public_key=signer.public_key,
        sign=signer.sign,
    )
    with pytest.raises(SplitViewError, match="shrank"):
        witness.observe(shrunk)
    assert witness.latest() == second  # the evidence is kept, not overwritten
