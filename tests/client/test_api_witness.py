"""A member's client witnesses the audit log (DESIGN.md guarantee 4), against the
real app on both engines: a caseworker's client verifies each checkpoint, checks
it extends the last one it saw with a consistency proof, and catches a forked
log; auditors' proofs and exports through the client."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.api import AccordClient, AsyncAccordClient
from accord_client.api_models import PermissionDeniedError
from accord_client.checkpoint import Checkpoint, CheckpointError, sign_note, verifier_key
from accord_client.witness import CheckpointWitness, SplitViewError

from service.auth.principals import Role
from tests.client.conftest import BASE_URL, NO_WAIT, SyncASGIBridge, staff_token
from tests.support.world import World


class Forging(httpx.AsyncBaseTransport):
    """The app, except that `GET /v1/audit/checkpoint` answers a checkpoint the
    operator signed for another tree while `forge` is set: of the real size with
    another root (history rewritten), or of a size the log never had."""

    def __init__(self, app: Any) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._app = app
        self.forge: str | None = None
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        response = await self._inner.handle_async_request(request)
        if not (self.forge and request.url.path == "/v1/audit/checkpoint"):
            return response
        body = json.loads(await response.aread())
        signer = self._app.state.keyring.checkpoint
        origin = self._app.state.settings.audit_origin
        size = body["tree_size"] + (1 if self.forge == "size" else 0)
        forged = Checkpoint(origin, size, bytes(32))
        body["note"] = sign_note(
            forged.body(), name=origin, public_key=signer.public_key, sign=signer.sign
        )
        return httpx.Response(200, json=body, request=request)


def witness_for(app: Any, state_file: Path | None) -> CheckpointWitness:
    """From the verifier key the operator publishes out of band (here: the app's)."""
    signer = app.state.keyring.checkpoint
    key = verifier_key(app.state.settings.audit_origin, signer.public_key)
    return CheckpointWitness.from_verifier_key(state_file, key)


async def test_a_caseworkers_client_checks_each_checkpoint_and_catches_a_fork(
    app: Any, world: World, tmp_path: Path
) -> None:
    transport = Forging(app)
    witness = witness_for(app, tmp_path / "witness.json")
    async with AsyncAccordClient(
        base_url=BASE_URL,
        token=staff_token(world, "vsp", Role.caseworker),
        transport=transport,
        retry=NO_WAIT,
        witness=witness,
    ) as caseworker:
        first = await caseworker.get_audit_checkpoint()
        remembered = witness.latest()
        assert remembered is not None
        assert remembered.size == first["tree_size"] > 0
        await caseworker.create_subject()  # the log grows
        second = await caseworker.get_audit_checkpoint()
        assert second["tree_size"] > first["tree_size"]
        assert witness.latest() == Checkpoint(
            remembered.origin,
            second["tree_size"],
            witness.latest().root_hash,  # type: ignore[union-attr]
        )
        assert "/v1/audit/proof/consistency" in transport.paths  # it asked for the proof

        # The operator rewrites history, or signs a tree it never had: the client
        # refuses and keeps the old state.
        await caseworker.create_subject()
        for forge in ("root", "size"):
            transport.forge = forge
            with pytest.raises(SplitViewError):
                await caseworker.get_audit_checkpoint()
        latest = witness.latest()
        assert latest is not None
        assert latest.size == second["tree_size"]

    # Another client with the same state file (a restart) still holds the evidence.
    again = witness_for(app, tmp_path / "witness.json")
    assert again.latest() == latest


async def test_a_checkpoint_signed_by_another_key_is_refused(app: Any, world: World) -> None:
    other = CheckpointWitness(None, app.state.settings.audit_origin, bytes(range(32)))
    async with AsyncAccordClient(
        base_url=BASE_URL,
        token=staff_token(world, "shelter", Role.caseworker),
        transport=httpx.ASGITransport(app=app),
        retry=NO_WAIT,
        witness=other,
    ) as client:
        with pytest.raises(CheckpointError):
            await client.get_audit_checkpoint()
        assert other.latest() is None


async def test_the_sync_client_witnesses_too(
    app: Any, world: World, bridge: SyncASGIBridge
) -> None:
    def scenario() -> tuple[int, int]:
        with AccordClient(
            base_url=BASE_URL,
            token=staff_token(world, "police", Role.investigator),
            transport=bridge,
            retry=NO_WAIT,
            witness=witness_for(app, None),
        ) as client:
            first = client.witness_checkpoint()
            client.list_principals  # noqa: B018 - the sync twin has every method
            with AccordClient(
                base_url=BASE_URL,
                token=staff_token(world, "platform", Role.platform_admin),
                transport=bridge,
                retry=NO_WAIT,
            ) as platform:
                platform.create_organization(name="Later", sector="healthcare")
            second = client.witness_checkpoint()
            return first.size, second.size

    first, second = await asyncio.to_thread(scenario)
    assert second > first


async def test_auditors_read_entries_proofs_and_exports_and_caseworkers_no_entries(
    app: Any, world: World
) -> None:
    async with (
        AsyncAccordClient(
            base_url=BASE_URL,
            token=staff_token(world, "oversight", Role.auditor),
            transport=httpx.ASGITransport(app=app),
            retry=NO_WAIT,
        ) as auditor,
        AsyncAccordClient(
            base_url=BASE_URL,
            token=staff_token(world, "vsp", Role.caseworker),
            transport=httpx.ASGITransport(app=app),
            retry=NO_WAIT,
        ) as caseworker,
    ):
        checkpoint = await auditor.get_audit_checkpoint()
        size = checkpoint["tree_size"]
        proof = await auditor.get_inclusion_proof(seq=0, tree_size=size)
        assert (proof["seq"], proof["tree_size"]) == (0, size)
        consistency = await caseworker.get_consistency_proof(from_size=1, to_size=size)
        assert consistency["from_size"] == 1
        entries = [e async for e in auditor.iter_audit_entries(page_size=2)]
        assert len(entries) >= size
        out = io.BytesIO()
        written = await auditor.export_audit(out)
        lines = out.getvalue().decode().splitlines()
        assert written == len(out.getvalue()) > 0
        assert "checkpoint" in json.loads(lines[-1])
        with pytest.raises(PermissionDeniedError):
            await caseworker.get_inclusion_proof(seq=0, tree_size=size)
        with pytest.raises(PermissionDeniedError):
            await caseworker.export_audit(io.BytesIO())
