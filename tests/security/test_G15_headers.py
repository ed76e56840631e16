"""G15: header abuse gets 431 or 400 from the request guard, never a 500, and
changes nothing; ordinary requests with ordinary headers are untouched."""

from __future__ import annotations

import httpx
import pytest

from service.auth.principals import Role
from service.web.middleware import MAX_HEADER_BYTES, MAX_HEADERS
from tests.support.databases import TestDatabase
from tests.support.world import World


@pytest.mark.parametrize(
    ("name", "headers", "status"),
    [
        ("200 headers", [(f"x-h{i}".encode(), b"v") for i in range(200)], 431),
        ("a 64 KB header", [(b"x-big", b"a" * 65536)], 431),
        ("just over the per-field limit", [(b"x-big", b"a" * MAX_HEADER_BYTES)], 431),
        ("invalid UTF-8", [(b"x-bad", b"\xff\xfe\xc3\x28")], 400),
        ("invalid UTF-8 token", [(b"authorization", b"Bearer \xff\xfe\xc3\x28")], 400),
    ],
)
async def test_G15_header_abuse_is_431_or_400_and_changes_nothing(
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    name: str,
    headers: list[tuple[bytes, bytes]],
    status: int,
) -> None:
    before = db.dump()
    staff = world.headers("vsp", Role.caseworker)
    extra = [(k.encode(), v.encode()) for k, v in staff.items() if k != "authorization"]
    if not any(k == b"authorization" for k, _ in headers):
        extra += [(b"authorization", staff["Authorization"].encode())]
    r = await client.post("/v1/subjects", json={}, headers=headers + extra)
    assert r.status_code == status, name
    assert r.headers["content-type"] == "application/problem+json"
    assert db.dump() == before


async def test_G15_ordinary_headers_pass(client: httpx.AsyncClient, world: World) -> None:
    headers = [(f"x-h{i}".encode(), b"v") for i in range(MAX_HEADERS - 10)]
    staff = world.headers("vsp", Role.caseworker)
    headers += [(b"authorization", staff["Authorization"].encode())]
    r = await client.post("/v1/subjects", json={}, headers=headers)
    assert r.status_code == 201, r.text
