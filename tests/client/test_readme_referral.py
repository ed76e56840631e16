"""The complete referral example in clients/README.md is a script: this test takes
the code block under its `referral-example` marker, runs it against the real app
(both engines) with the sync client, and checks what it returns, so the example in
the documentation cannot rot."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from accord_client.api import AccordClient
from accord_client.keys import generate_organization_keys

from service.auth.principals import Role
from tests.client.conftest import BASE_URL, NO_WAIT, SyncASGIBridge, staff_token
from tests.support.databases import TestDatabase
from tests.support.world import World

README = Path(__file__).resolve().parents[2] / "clients" / "README.md"
MARKER = "<!-- referral-example:"


def example_source() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(MARKER)
    block = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, "the referral example's code block is missing"
    return block.group(1)


def test_the_readme_marks_one_python_block_as_the_referral_example() -> None:
    source = example_source()
    compile(source, str(README), "exec")  # a syntax error here fails the test
    assert "def referral_example(" in source


async def test_readme_referral_example_runs_end_to_end(
    world: World, bridge: SyncASGIBridge, db: TestDatabase
) -> None:
    namespace: dict[str, Any] = {"__name__": "readme_referral_example"}
    # The README's own example, run as written (S102: executing our documentation).
    exec(compile(example_source(), str(README), "exec"), namespace)  # noqa: S102
    referral_example = namespace["referral_example"]

    def client(org: str, role: Role = Role.caseworker) -> AccordClient:
        return AccordClient(
            base_url=BASE_URL, token=staff_token(world, org, role), transport=bridge, retry=NO_WAIT
        )

    def scenario() -> dict[str, Any]:
        vsp_keys = generate_organization_keys(str(world.orgs["vsp"]))
        shelter_keys = generate_organization_keys(str(world.orgs["shelter"]))
        for org, keys in (("vsp", vsp_keys), ("shelter", shelter_keys)):
            with client(org, Role.org_admin) as admin:
                admin.register_keys(keys.org_id, keys)
        with client("vsp") as sender, client("shelter") as recipient:
            result: dict[str, Any] = referral_example(
                sender, vsp_keys, recipient, shelter_keys, now=world.clock.now()
            )
            result["seen_by_sender"] = sender.get_referral(result["referral"]["id"])
            return result

    out = await asyncio.to_thread(scenario)
    assert out["values"] == {"needs": "bed for one adult tonight", "phone": "+1-555-0100"}
    assert list(out["withheld"]) == []
    assert out["referral"]["status"] == "closed"
    # Closed loop: the sender sees what became of its referral.
    assert out["seen_by_sender"]["status"] == "closed"
    # Zero knowledge: the example's values never reached the database in clear.
    raw = db.dump()
    assert "bed for one adult tonight" not in raw
    assert "+1-555-0100" not in raw
