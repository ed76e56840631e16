"""G17 (a row this project adds, docs/threat-model.md "Input rules"): deeply nested
JSON is refused with a 400 problem before any recursive parser runs (issue 22
item 8). About a thousand nested arrays used to answer 500 without authentication,
with a traceback in the log and the keep-alive connection dropped.

Every route that takes a body, with and without a token, with about 1,000 and
100,000 levels of arrays and of objects; then a real server: no traceback, and
the next request on the same connection is answered."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from service.auth.principals import Role
from service.web.json_depth import MAX_JSON_DEPTH, json_depth
from service.web.middleware import BODY_METHODS, app_routes
from tests.support.databases import TestDatabase
from tests.support.processes import free_port, service_env, wait_until_healthy
from tests.support.world import World

PARAM = re.compile(r"\{[^}]+\}")
ROOT = Path(__file__).resolve().parents[2]


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


BODIES = {
    "arrays-1000": arrays(1_000),
    "objects-1000": objects(1_000),
    "arrays-100000": arrays(100_000),
    "objects-100000": objects(100_000),
    "just-over": arrays(MAX_JSON_DEPTH + 1),
}


def body_routes(app: object) -> list[tuple[str, str]]:
    """(method, concrete path) for every route that takes a body; ids are random."""
    out = []
    for _route, path, methods in app_routes(app):
        for method in sorted(methods & BODY_METHODS):
            out.append((method, PARAM.sub(lambda _: str(uuid.uuid4()), path)))
    return sorted(set(out))


def test_G17_depth_is_measured_outside_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": ["\\"[", "\\\\"]}') == 2
    assert json_depth(b"3") == 0
    assert json_depth(arrays(100_000)) == 100_000


async def test_G17_deep_json_is_a_400_on_every_body_route(
    app: object, client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    routes = body_routes(app)
    assert len(routes) > 20
    token = world.headers("vsp", Role.caseworker, Role.supervisor, Role.org_admin)
    before = db.dump()
    for name, body in BODIES.items():
        for index, (method, path) in enumerate(routes):
            # The largest bodies alternate between no token and a token, route by route.
            both = ({}, token) if len(body) < 10_000 else (({}, token)[index % 2],)
            for headers in both:
                form = path.startswith(("/s/", "/o/"))
                r = await client.request(
                    method,
                    path,
                    content=body,
                    headers={
                        **headers,
                        "content-type": "application/x-www-form-urlencoded"
                        if form
                        else "application/json",
                    },
                )
                if form:  # the survivor's and the oversight pages take HTML forms, never JSON
                    assert r.status_code < 500, (name, method, path)
                    continue
                assert r.status_code == 400, (name, method, path, r.text)
                problem = r.json()
                assert problem["type"].endswith("json-too-deep"), problem
                assert r.headers["content-type"] == "application/problem+json"
    # The limit itself is allowed through to the handler (here: the subject schema).
    r = await client.post(
        "/v1/subjects",
        content=arrays(MAX_JSON_DEPTH),
        headers={**token, "content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert db.dump() == before


@pytest.mark.parametrize(
    "segment",
    [arrays(2_500), b'{"":' * 1_200 + b"1" + b"}" * 1_200],  # within the header limits
    ids=["arrays", "objects"],
)
async def test_G17_deep_json_in_a_token_header_is_a_401(
    client: httpx.AsyncClient, db: TestDatabase, segment: bytes
) -> None:
    """The same parser reads a bearer token's header before any signature check."""
    header = base64.urlsafe_b64encode(segment).rstrip(b"=").decode()
    before = db.dump()
    r = await client.get(
        "/v1/organizations", headers={"authorization": f"Bearer {header}.e30.c2ln"}
    )
    assert r.status_code == 401, r.text
    assert db.dump() == before


def exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one HTTP/1.1 request on an open connection; read one whole response."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        rest += chunk
    return head


def post(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def test_G17_real_server_keeps_the_connection_and_logs_no_traceback(
    db: TestDatabase, key_dir: Path, tmp_path: Path
) -> None:
    if db.engine == "postgresql":
        pytest.skip("the guard answers before the database is used: one engine suffices")
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "info",
        cwd=ROOT, env=service_env(db, key_dir),
        stdout=log, stderr=log,
    )  # fmt: skip
    try:
        await wait_until_healthy(f"http://127.0.0.1:{port}")

        def talk() -> list[bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                heads = [exchange(sock, post("/v1/referrals", b)) for b in BODIES.values()]
                heads.append(exchange(sock, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
                return heads

        heads = await asyncio.to_thread(talk)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 30)
        log.close()
    assert [h.split(b" ")[1] for h in heads] == [b"400"] * len(BODIES) + [b"200"]
    text = (tmp_path / "server.log").read_bytes()
    assert b"Traceback" not in text
    assert b"RecursionError" not in text
