"""SECURITY-TESTS H11, key source unavailable at start.

- A JWKS URL that cannot be reached: the service starts, `/readyz` answers 503,
  and every request with a token answers 503 (the keys cannot be fetched) or 401,
  never 500 and never accepted, changing nothing (O-unchanged). Once the identity
  provider answers, `/readyz` turns 200 and the same token is accepted. The provider
  is a real HTTP server on the loopback, started only for the second half.
- A JWKS file that cannot be read or holds no usable key: the service does not
  start, and the error names the file (as an invalid policy set does, H09); a
  process that never starts never answers 200.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.auth.keys import JwksError, okp_jwk
from service.auth.principals import Role
from service.clock import FrozenClock
from service.crypto import FileSigner
from service.settings import Settings
from tests.support.databases import TestDatabase, settings_for
from tests.support.devkeys import DEV_STAFF_KEY_FILE
from tests.support.world import TokenFactory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _jwks_server(port: int, document: bytes) -> Iterator[None]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _settings(db: TestDatabase, key_dir: Path, **extra: Any) -> Settings:
    return settings_for(db, key_dir, jwks_min_refresh_seconds=0, **extra)


async def test_H11_unreachable_jwks_url_is_not_ready_and_accepts_nothing(
    db: TestDatabase, key_dir: Path, clock: FrozenClock
) -> None:
    # The staff key the provider will publish, and tokens signed with it.
    signer = FileSigner.load_or_create(key_dir / DEV_STAFF_KEY_FILE)
    port = _free_port()  # nothing listens there until the provider starts below
    settings = _settings(db, key_dir, jwt_jwks_url=f"http://127.0.0.1:{port}/jwks")
    app = create_app(settings, clock=clock)
    tokens = TokenFactory(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://accord.test") as http:
            platform = await _platform(app)
            headers = tokens.headers(platform, Role.platform_admin)
            body = {"name": "Not while the keys are away", "sector": "shelter"}
            before = db.dump()
            ready = await http.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.headers["content-type"].startswith("application/problem+json")
            for method, path, payload in (
                ("POST", "/v1/organizations", body),
                ("GET", "/v1/organizations", None),
                ("GET", "/v1/audit/entries", None),
            ):
                r = await http.request(method, path, json=payload, headers=headers)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert r.headers["content-type"].startswith("application/problem+json")
                assert int(r.headers["retry-after"]) > 0
            garbage = await http.get("/v1/organizations", headers={"Authorization": "Bearer x"})
            assert garbage.status_code == 401
            assert db.dump() == before  # O-unchanged

            # The provider comes up: ready, and the same token is accepted.
            document = json.dumps({"keys": [okp_jwk(signer.public_key)]}).encode()
            with _jwks_server(port, document):
                assert (await http.get("/readyz")).status_code == 200
                created = await http.post("/v1/organizations", json=body, headers=headers)
                assert created.status_code == 201, created.text


async def _platform(app: Any) -> Any:
    from service.cli import CLI_PRINCIPAL
    from service.organizations import service as org_service
    from service.organizations.schemas import OrganizationCreate
    from service.sectors import Sector

    async with app.state.sessionmaker() as session:
        org = await org_service.create(
            session,
            principal=CLI_PRINCIPAL,
            data=OrganizationCreate(name="H11 platform", sector=Sector.government),
            clock=app.state.clock,
        )
        await session.commit()
        return org.id


@pytest.mark.parametrize("content", [None, b"{not json", b'{"keys": []}'])
async def test_H11_unusable_jwks_file_stops_the_start_naming_the_file(
    db: TestDatabase, key_dir: Path, tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "jwks.json"
    if content is not None:
        path.write_bytes(content)
    app = create_app(_settings(db, key_dir, jwt_jwks_file=path))
    with pytest.raises(JwksError, match=str(path)):
        async with app.router.lifespan_context(app):
            pytest.fail("the service started without usable token keys")
