"""The webhook receiver and the feed loop in clients/README.md are scripts: these tests
take the code blocks under their markers and run them, the receiver with webhooks
signed as the service signs them (its own signer and an endpoint secret registered
through the client), the feed loop against the real app (both engines)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.api import AccordClient, AsyncAccordClient
from accord_client.keys import generate_organization_keys

from service.auth.principals import Role
from service.events import signing
from tests.client.conftest import BASE_URL, NO_WAIT, SyncASGIBridge, async_client, staff_token
from tests.support.world import World

README = Path(__file__).resolve().parents[2] / "clients" / "README.md"
URL = "https://93.184.215.14/hooks/accord"


def example_source(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"<!-- {marker}:")
    block = re.search(r"```python\n(.*?)```", text[start:], re.DOTALL)
    assert block is not None, f"the {marker} code block is missing"
    return block.group(1)


def run_example(marker: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": marker.replace("-", "_")}
    # The README's own example, run as written (S102: executing our documentation).
    exec(compile(example_source(marker), str(README), "exec"), namespace)  # noqa: S102
    return namespace


@pytest.mark.parametrize("marker", ["webhook-receiver-example", "feed-example"])
def test_the_readme_marks_the_event_examples(marker: str) -> None:
    compile(example_source(marker), str(README), "exec")  # a syntax error fails here


async def rotate_keys(admin: AsyncAccordClient, org_id: Any, times: int) -> None:
    for _ in range(times):
        await admin.register_keys(org_id, generate_organization_keys(str(org_id)))


async def test_the_readme_receiver_acts_once_on_each_verified_webhook(
    app: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    vsp = world.orgs["vsp"]
    async with async_client(app, world, "vsp", Role.org_admin) as admin:
        created = await admin.create_webhook(vsp, url=URL, event_types=["keys.rotated"])
        public_key = await admin.webhook_signing_key()
        await rotate_keys(admin, vsp, times=2)
        events = [e async for e in admin.iter_events() if e["type"] == "keys.rotated"]
    raw_secret = base64.b64decode(created.secret.removeprefix("whsec_"))

    def signed(event: dict[str, Any], *, age: int = 0) -> tuple[bytes, dict[str, str]]:
        """The body and headers the service sends (service/events/signing.py)."""
        body = json.dumps(event).encode()
        ts = int(time.time()) - age  # the receiver checks against the real clock
        return body, signing.headers(
            event["id"], ts, body, secrets=[raw_secret], signer=app.state.keyring.webhook
        )

    # Run as written, the script serves `app` built from the environment.
    monkeypatch.setenv("ACCORD_WEBHOOK_SECRET", created.secret)
    monkeypatch.delenv("ACCORD_WEBHOOK_PUBLIC_KEY", raising=False)
    namespace = run_example("webhook-receiver-example")
    assert callable(namespace["app"])
    with pytest.raises(ValueError, match="secret"):
        namespace["make_receiver"](print)

    handled: list[dict[str, Any]] = []
    failing = {"on": False}

    def handle(event: dict[str, Any]) -> None:
        if failing["on"]:
            raise RuntimeError("the tool's queue is down")
        handled.append(event)

    for keys in ({"secret": created.secret}, {"public_key": public_key}):
        handled.clear()
        receiver = namespace["make_receiver"](handle, **keys)
        transport = httpx.ASGITransport(app=receiver)
        async with httpx.AsyncClient(transport=transport, base_url="http://cms.test") as http:
            first, second = events[0], events[1]
            body, headers = signed(first)
            ok = await http.post("/accord", content=body, headers=headers)
            assert ok.status_code == 204
            assert handled == [first]

            replay = await http.post("/accord", content=body, headers=headers)
            assert replay.status_code == 200  # acknowledged, not acted on again
            assert handled == [first]

            forged = json.dumps({**first, "type": "consent.withdrawn"}).encode()
            refused = await http.post("/accord", content=forged, headers=headers)
            assert (refused.status_code, refused.text) == (400, "invalid_signature")

            stale_body, stale = signed({**second, "id": str(uuid.uuid4())}, age=600)
            late = await http.post("/accord", content=stale_body, headers=stale)
            assert (late.status_code, late.text) == (400, "timestamp_too_old")

            unsigned = await http.post("/accord", content=body, headers={"webhook-id": "x"})
            assert (unsigned.status_code, unsigned.text) == (400, "missing_header")
            assert (await http.get("/accord")).status_code == 405

            # The tool fails once: 500, and the service's retry (same id) gets in.
            failing["on"] = True
            body2, headers2 = signed(second)
            assert (await http.post("/accord", content=body2, headers=headers2)).status_code == 500
            failing["on"] = False
            body2, headers2 = signed(second)  # a retry: same id, new timestamp
            assert (await http.post("/accord", content=body2, headers=headers2)).status_code == 204
            assert handled == [first, second]


async def test_the_readme_feed_loop_resumes_from_its_cursor(
    app: Any, world: World, bridge: SyncASGIBridge, tmp_path: Path
) -> None:
    follow_feed = run_example("feed-example")["follow_feed"]
    cursor_file = tmp_path / "accord-feed.cursor"
    handled: list[dict[str, Any]] = []

    def follow_once() -> int:
        token = staff_token(world)
        with AccordClient(base_url=BASE_URL, token=token, transport=bridge, retry=NO_WAIT) as c:
            last: int = follow_feed(
                c, handled.append, cursor_file=cursor_file, keep_going=lambda: False
            )
            return last

    async with async_client(app, world, "shelter", Role.org_admin) as admin:
        await rotate_keys(admin, world.orgs["shelter"], times=2)
    last = await asyncio.to_thread(follow_once)
    async with async_client(app, world) as reader:
        everything = [e async for e in reader.iter_events()]
    assert handled == everything
    assert last == everything[-1]["seq"] == int(cursor_file.read_text())

    async with async_client(app, world, "shelter", Role.org_admin) as admin:
        await rotate_keys(admin, world.orgs["shelter"], times=1)
    handled.clear()
    again = await asyncio.to_thread(follow_once)
    assert [e["type"] for e in handled] == ["keys.rotated"]  # only the new one
    assert handled[0]["seq"] == again == last + 1
    assert int(cursor_file.read_text()) == again
