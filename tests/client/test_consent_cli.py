"""`accord-consent` round trip through CliRunner against the real app (both engines):
record with an evidence file (only its hash is sent), amend, list, export, revoke;
problems on stderr with exit code 1."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from accord_client.consent_cli import app as cli
from click.testing import Result
from typer.testing import CliRunner

from service.auth.principals import Role
from tests.client.conftest import BASE_URL, SyncASGIBridge, staff_token
from tests.support.databases import TestDatabase
from tests.support.factories import new_subject
from tests.support.world import World

EVIDENCE = b"%PDF-1.7 generated consent form fixture\n"


async def invoke(bridge: SyncASGIBridge, token: str, *args: str) -> Result:
    env = {"ACCORD_URL": BASE_URL, "ACCORD_TOKEN": token}
    return await asyncio.to_thread(
        CliRunner().invoke, cli, list(args), env=env, obj=bridge, catch_exceptions=False
    )


def grant_args(world: World, evidence: Path, *, categories: tuple[str, ...]) -> list[str]:
    args = [
        "--recipient", str(world.orgs["shelter"]),
        "--purpose", "services_referral",
        "--expires-at", (world.clock.now() + timedelta(days=60)).isoformat(),
        "--method", "written",
        "--language", "es-MX",
        "--evidence-file", str(evidence),
    ]  # fmt: skip
    for category in categories:
        args += ["--category", category]
    return args


async def test_record_amend_list_export_revoke(
    client: Any, world: World, bridge: SyncASGIBridge, tmp_path: Path
) -> None:
    subject = await new_subject(client, world)
    token = staff_token(world)
    evidence = tmp_path / "signed-form.pdf"
    evidence.write_bytes(EVIDENCE)

    r = await invoke(
        bridge,
        token,
        "record",
        subject,
        *grant_args(world, evidence, categories=("contact", "needs")),
    )
    assert r.exit_code == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["evidence_sha256"] == hashlib.sha256(EVIDENCE).hexdigest()
    assert first["categories"] == ["contact", "needs"]
    sent = [req.read() for req in bridge.requests]
    assert not any(EVIDENCE in body for body in sent)  # the file never leaves the machine

    r = await invoke(
        bridge, token, "amend", first["id"], *grant_args(world, evidence, categories=("contact",))
    )
    assert r.exit_code == 0, r.stderr
    second = json.loads(r.stdout)
    assert second["supersedes"] == first["id"]

    r = await invoke(bridge, token, "list", subject)
    assert r.exit_code == 0, r.stderr
    assert [c["id"] for c in json.loads(r.stdout)] == [second["id"], first["id"]]

    receipt_file = tmp_path / "receipt.json"
    r = await invoke(
        bridge, token, "export", second["id"], "--format", "receipt", "--output", str(receipt_file)
    )
    assert r.exit_code == 0, r.stderr
    assert json.loads(receipt_file.read_text())
    assert receipt_file.stat().st_mode & 0o077 == 0
    r = await invoke(bridge, token, "export", second["id"], "--format", "fhir")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["resourceType"] == "Consent"

    r = await invoke(bridge, token, "revoke", second["id"], "--reason", "survivor asked")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["revoked_at"] is not None


async def test_a_422_prints_each_rule_to_stderr_and_exits_1(
    client: Any, world: World, bridge: SyncASGIBridge, tmp_path: Path, db: TestDatabase
) -> None:
    subject = await new_subject(client, world)
    evidence = tmp_path / "form.pdf"
    evidence.write_bytes(EVIDENCE)
    before = db.dump()
    args = grant_args(world, evidence, categories=("contact",))
    args[args.index("--language") + 1] = "x"
    r = await invoke(bridge, staff_token(world), "record", subject, *args, "--giver-ref", "AB" * 32)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "422" in r.stderr
    assert "/language:" in r.stderr
    assert "/giver_ref:" in r.stderr
    assert "AB" * 32 not in r.stderr
    assert db.dump() == before


async def test_forbidden_and_missing_settings_exit_1(
    client: Any, world: World, bridge: SyncASGIBridge
) -> None:
    subject = await new_subject(client, world)
    r = await invoke(bridge, staff_token(world, "police", Role.investigator), "list", subject)
    assert r.exit_code == 1
    assert r.stderr.startswith("error: 40")
    r = await invoke(bridge, "", "list", subject)
    assert r.exit_code == 1
    assert "ACCORD_TOKEN" in r.stderr
