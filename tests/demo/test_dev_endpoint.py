"""`POST /dev/demo` (service/sandbox/router.py), the door `accord demo` uses: it
exists only in development with the development token key, answers only a caller on
this machine that asked for this machine by name, is idempotent, and its tokens
open the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.routing import NoMatchFound

from service.app import create_app
from service.sandbox.router import from_loopback
from service.settings import Environment, Settings
from tests.support.databases import TestDatabase, settings_for

DEV = "/dev/demo"


@pytest.mark.parametrize(
    ("environment", "jwks", "mounted"),
    [
        (Environment.development, None, True),
        (Environment.development, Path("/etc/jwks.json"), False),
        (Environment.test, None, False),
        (Environment.production, Path("/etc/jwks.json"), False),
    ],
)
def test_mounted_only_in_development_without_an_identity_provider(
    environment: Environment, jwks: Path | None, mounted: bool
) -> None:
    settings = Settings(environment=environment, jwt_jwks_file=jwks, jwt_issuer="https://idp")
    app = create_app(settings)
    try:
        path = app.url_path_for("sandbox_demo")
    except NoMatchFound:
        path = None
    assert (path == DEV) is mounted
    assert DEV not in str(app.openapi())


@pytest.mark.parametrize(
    ("peer", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:8000", True),
        ("127.0.0.1", "localhost:8000", True),
        ("::1", "[::1]:8000", True),
        ("127.0.0.1", "localhost", True),
        ("10.0.0.7", "127.0.0.1:8000", False),  # another machine
        ("127.0.0.1", "evil.example:8000", False),  # a page that rebound its name
        ("127.0.0.1", "", False),
        ("not-an-address", "localhost", False),
    ],
)
def test_loopback_peer_and_loopback_host_only(peer: str, host: str, allowed: bool) -> None:
    scope = {
        "type": "http",
        "method": "POST",
        "path": DEV,
        "headers": [(b"host", host.encode())] if host else [],
        "client": (peer, 50000),
    }
    assert from_loopback(Request(scope)) is allowed


async def test_idempotent_and_refused_to_another_machine(
    db: TestDatabase, key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Development configures the process's logging; the test run keeps its own.
    monkeypatch.setattr("service.app.configure_logging", lambda level: None)
    settings = settings_for(db, key_dir, environment=Environment.development, test_hooks=False)
    app = create_app(settings)
    async with app.router.lifespan_context(app):

        def client(peer: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(peer, 50000))
            return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")

        async with client("10.0.0.7") as remote:
            refused = await remote.post(DEV, json={})
        assert refused.status_code == 404
        async with client("127.0.0.1") as local:
            assert (await local.post(DEV, content=b"{}")).status_code == 415
            first = await local.post(DEV, json={})
            second = await local.post(DEV, json={})
            assert first.status_code == second.status_code == 200, first.text
            assert "no-store" in first.headers["cache-control"]  # bearer tokens: never cached
            one, two = first.json(), second.json()
            assert one["created"] is True
            assert two["created"] is False
            assert one["organizations"] == two["organizations"]
            assert one["collaboration_id"] == two["collaboration_id"]
            tokens = {p["name"]: p["token"] for p in two["principals"]}
            headers = {"Authorization": f"Bearer {tokens['platform-admin']}"}
            collab = await local.get(
                f"/v1/collaborations/{two['collaboration_id']}", headers=headers
            )
            assert collab.status_code == 200, collab.text
            members = {m["org_id"] for m in collab.json()["members"]}
            assert members == set(two["organizations"].values())
            orgs = await local.get("/v1/organizations?limit=200", headers=headers)
            demo = [o for o in orgs.json()["items"] if o["name"].endswith("(demo)")]
            assert len(demo) == 5  # the second call made no second federation
