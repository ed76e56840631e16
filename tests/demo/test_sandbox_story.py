"""`accord demo` and `accord demo --story` against a live `accord serve` on both
engines, as a newcomer runs them (issue 21, "a sandbox that works in one command"):
the command reaches the service over HTTP from another directory; a second run
renews the tokens and reuses the federation; every organization has registered
keys and accepts referrals; the story runs end to end well inside two minutes. The
same run checks what the service logged: JSON from its first line, and nothing from
Alembic on a readiness probe."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import stat
import sys
import time
from pathlib import Path

import httpx
from accord_client.audit_cli import app as audit_cli
from typer.testing import CliRunner

from service.cli import app as cli
from service.sandbox.remote import export_audit_log
from service.sandbox.setup import prepare
from service.sandbox.story import REFERRAL_FIELDS, run_story
from tests.support.databases import TestDatabase
from tests.support.processes import free_port, service_env, wait_until_healthy

ACCORD = str(Path(sys.executable).parent / "accord")
DEMO_NAMES = 5


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _serve(db: TestDatabase, key_dir: Path, cwd: Path, log: Path) -> tuple[object, str]:
    port = free_port()
    with log.open("wb") as err:
        server = await asyncio.create_subprocess_exec(
            ACCORD, "serve", "--port", str(port),
            cwd=cwd, env=service_env(db, key_dir, ACCORD_ENVIRONMENT="development"),
            stdout=err, stderr=err, start_new_session=True,
        )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


async def test_demo_twice_then_the_story_against_a_live_service(
    db: TestDatabase, key_dir: Path, tmp_path: Path
) -> None:
    service_dir, user_dir = tmp_path / "service", tmp_path / "elsewhere"
    service_dir.mkdir()
    user_dir.mkdir()
    log = tmp_path / "serve.log"
    server, base = await _serve(db, key_dir, service_dir, log)
    assert isinstance(server, asyncio.subprocess.Process)
    demo_json, demo_keys = user_dir / "demo.json", user_dir / "keys"
    try:
        await wait_until_healthy(base)
        started = time.monotonic()
        args = ["demo", "--url", base, "--output", str(demo_json), "--key-dir", str(demo_keys)]
        first = await asyncio.to_thread(CliRunner().invoke, cli, args)
        assert first.exit_code == 0, first.output
        assert ": created" in first.stdout
        out = json.loads(demo_json.read_text())
        assert set(out["organizations"]) == {"vsp", "shelter", "police", "prosecutor", "oversight"}
        # A token per principal, an admin for every organization among them.
        admins = {p["organization"] for p in out["principals"] if "org_admin" in p["roles"]}
        assert admins == set(out["organizations"])
        for name, token in out["tokens"].items():
            assert name in first.stdout
            assert token in first.stdout
        assert _mode(demo_json) == 0o600
        assert _mode(demo_keys) == 0o700
        assert len(list(demo_keys.iterdir())) == DEMO_NAMES
        assert all(_mode(f) == 0o600 for f in demo_keys.iterdir())

        # Again: the same federation, new tokens, keys not registered a second time.
        sandbox = await asyncio.to_thread(prepare, base, key_dir=demo_keys)
        assert not sandbox.created
        assert sandbox.organizations == out["organizations"]
        assert sandbox.collaboration_id == out["collaboration_id"]
        assert sandbox.token("vsp-caseworker") != out["tokens"]["vsp-caseworker"]

        def directory() -> list[dict[str, object]]:
            with sandbox.client("platform-admin") as admin:
                return [
                    {
                        "org": org,
                        "accepting": admin.get_organization(org)["availability"][
                            "accepting_referrals"
                        ],
                        "history": admin.get_key_history(org),
                    }
                    for org in sandbox.organizations.values()
                ]

        entries = await asyncio.to_thread(directory)
        assert all(e["accepting"] is True for e in entries)
        for entry in entries:
            history = json.dumps(entry["history"])
            assert history.count('"kind": "encryption"') == 1, history
        async with httpx.AsyncClient(base_url=base) as http:
            headers = {"Authorization": f"Bearer {sandbox.token('police-investigator')}"}
            listed = (await http.get("/v1/organizations?limit=200", headers=headers)).json()
        names = [o["name"] for o in listed["items"] if o["name"].endswith("(demo)")]
        assert len(names) == DEMO_NAMES  # no second federation

        said: list[str] = []
        result = await asyncio.to_thread(run_story, sandbox, say=said.append)
        elapsed = time.monotonic() - started
        print(f"demo twice and the story: {elapsed:.1f} s")
        assert elapsed < 90, f"demo twice and the story took {elapsed:.0f} s"
        assert result.opened == sorted(f.name for f in REFERRAL_FIELDS)
        assert result.preliminary["counseling_notes"] == "never"
        assert result.preliminary["identity"] == "needs_consent"
        assert sorted(result.withheld) == result.opened
        assert result.timeline[:2] == ["sent", "delivered"]
        assert len(result.timeline) == 3
        assert result.actions["disclosure"] == 1
        assert result.actions["withheld"] == 1
        assert said[-1].startswith("Done")
        # Issue 24: the VSP-police protocol binds only while both signed it.
        protocol = result.protocol
        assert protocol.widening_refused
        assert protocol.needs_outlook == "deny"
        assert protocol.missing_signature == out["organizations"]["vsp"]
        assert protocol.released_before == ["full_name", "phone"]
        assert protocol.withheld_after == ["full_name", "phone"]
        assert protocol.police_told
        story = "\n".join(said)
        for value in (f.value for f in REFERRAL_FIELDS):
            assert value not in story  # names are printed, never values

        # The offline verifier prints the root as the API does: standard base64.
        lines = await asyncio.to_thread(export_audit_log, base, sandbox.token("oversight-auditor"))
        export = tmp_path / "export.jsonl"
        export.write_bytes(b"\n".join(lines) + b"\n")
        checkpoint = json.loads(lines[-1])["checkpoint"]
        root = base64.b64decode(checkpoint.splitlines()[2], validate=True)
        verify = ["verify", "--key", sandbox.audit_verifier_key, str(export)]
        verified = CliRunner().invoke(audit_cli, verify)
        assert verified.exit_code == 0, verified.output
        assert f"root {base64.b64encode(root).decode()}" in verified.stdout

        async with httpx.AsyncClient(base_url=base) as http:
            for _ in range(3):
                assert (await http.get("/readyz")).status_code == 200
    finally:
        if server.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 30)
            except TimeoutError:
                os.killpg(server.pid, signal.SIGKILL)
                await server.wait()
    logged = [json.loads(line) for line in log.read_text().splitlines()]  # every line JSON
    # The webhook dispatcher's process (PostgreSQL) logs to the same stderr.
    served = [e for e in logged if not e["logger"].startswith("accord.events")]
    assert served[0]["message"].startswith("Started server process")
    assert not [e for e in logged if e["logger"].startswith("alembic")]
    assert not list(service_dir.iterdir())  # nothing written where the service runs
