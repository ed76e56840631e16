"""docs/law-enforcement.md's walkthrough is a script: this test takes the code block
under its `walkthrough` marker and runs it against the real app on both engines
(consent request, answer, delivery; court order and its obligation; emergency release
and its review), then checks the audit log recorded each step."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.audit.models import AuditEntry
from tests.records_requests.support import RequestKit, make_request_kit
from tests.support.world import World

DOC = Path(__file__).resolve().parents[2] / "docs" / "law-enforcement.md"
MARKER = "<!-- walkthrough:"


def walkthrough_source() -> str:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    assert block is not None, "the walkthrough's code block is missing"
    return block.group(1)


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    return await make_request_kit(client, world)


async def test_the_law_enforcement_walkthrough_runs(kit: RequestKit, app: Any) -> None:
    namespace: dict[str, Any] = {"__name__": "law_enforcement_walkthrough"}
    # The document's own example, run as written (S102: executing our documentation).
    exec(compile(walkthrough_source(), str(DOC), "exec"), namespace)  # noqa: S102

    def staff(org: str, role: str, sub: str) -> dict[str, str]:
        return kit.world.headers(org, role, sub=sub)

    out = await namespace["walkthrough"](
        kit.client, staff, kit.world.orgs, kit.keys, kit.world.clock.now()
    )
    async with app.state.sessionmaker() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    actions = [e.action for e in entries]
    for action in (
        "request.created",
        "request.released",
        "disclosure",
        "obligation.created",
        "obligation.done",
        "review.opened",
        "review.closed",
    ):
        assert action in actions, action
    bodies = "\n".join(e.body for e in entries)
    assert "Walkthrough Person" not in bodies  # values never reach the log
    assert "Credible threat" not in bodies  # nor free text
    disclosed = {
        json.loads(e.body)["details"].get("request_id") for e in entries if e.action == "disclosure"
    }
    assert disclosed == set(out["requests"])
