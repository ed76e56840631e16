"""Issue 20: the access link is a link. A single-use, short-lived code in `/s/{code}`
is exchanged once for a session cookie and leaves the address bar at once (303);
a used, unknown, expired or revoked code gets one neutral page; the caseworker
ends a link at once with `DELETE /v1/access-links/{id}`, and its session, its
unused code and its API token stop working on their next request. Both engines."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from service.settings import Settings
from tests.pages.support import Browser, code_of, issue_link, new_browser
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World


async def _actions(app: Any) -> list[tuple[str, dict[str, Any]]]:
    async with app.state.sessionmaker() as session:
        entries = (await session.scalars(select(AuditEntry).order_by(AuditEntry.seq))).all()
    return [(e.action, json.loads(e.body).get("details", {})) for e in entries]


async def _neutral(browser: Browser, code: str) -> httpx.Response:
    response = await browser.get(f"/s/{code}")
    assert response.status_code == 404
    assert "set-cookie" not in response.headers
    return response


async def test_the_code_opens_a_session_once_and_leaves_the_address_bar(
    app: Any,
    client: httpx.AsyncClient,
    world: World,
    db: TestDatabase,
    browser: Browser,
    other_browser: Browser,
) -> None:
    subject, _ = await new_consent(client, world)
    link = await issue_link(client, world, subject, lifetime_seconds=3600)
    code = code_of(link)
    now = world.clock.now()
    assert re.fullmatch(r"[a-z2-7]{26}", code)  # 128 bits of lowercase base32
    assert datetime.fromisoformat(link["code_expires_at"]) == now + timedelta(minutes=15)
    assert datetime.fromisoformat(link["expires_at"]) == now + timedelta(hours=1)
    # Only the code's hash is stored.
    stored = db.dump()
    assert code not in stored
    assert hashlib.sha256(code.encode()).hexdigest() in stored

    opened = await browser.open(link)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/s/consents"
    cookie = opened.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/s", "Max-Age=3600"):
        assert attribute in cookie, cookie
    assert "Secure" not in cookie  # test settings: not production, no https address
    assert (await browser.get("/s/consents")).status_code == 200

    # The second use, from anywhere, is refused with the neutral page.
    second = await _neutral(other_browser, code)
    assert second.text == (await _neutral(other_browser, "a" * 26)).text
    assert (await other_browser.get("/s/consents")).status_code == 403
    # The first browser keeps its session.
    assert (await browser.get("/s/consents")).status_code == 200
    actions = await _actions(app)
    opened_entries = [
        d for a, d in actions if a == "access_link.used" and d["what"] == "session.opened"
    ]
    assert [d["link_id"] for d in opened_entries] == [link["id"]]
    refused = [d for a, d in actions if a == "access_link.refused"]
    assert refused == [{"link_id": link["id"], "reason": "code_used"}]
    assert code not in json.dumps(actions)


async def test_used_unknown_expired_and_revoked_codes_get_one_identical_page(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    subject, _ = await new_consent(client, world)
    used = await issue_link(client, world, subject)
    assert (await browser.open(used)).status_code == 303
    expired = await issue_link(client, world, subject)
    revoked = await issue_link(client, world, subject)
    r = await client.delete(
        f"/v1/access-links/{revoked['id']}", headers=world.headers("vsp", Role.caseworker)
    )
    assert r.status_code == 204
    world.clock.advance(15 * 60)  # the code lives 15 minutes: `expired` is now past
    fresh = await issue_link(client, world, subject)
    stranger = new_browser(app)
    async with stranger.http:
        pages = {
            name: await _neutral(stranger, code)
            for name, code in {
                "used": code_of(used),
                "expired": code_of(expired),
                "revoked": code_of(revoked),
                "unknown": "b" * 26,
                "malformed": "not-a-code",
            }.items()
        }
        bodies = {name: page.text for name, page in pages.items()}
        assert len(set(bodies.values())) == 1, bodies.keys()
        # And the one that is still good opens.
        assert (await stranger.open(fresh)).status_code == 303
    reasons = sorted(d["reason"] for a, d in await _actions(app) if a == "access_link.refused")
    assert reasons == ["code_used", "expired", "revoked"]


async def test_a_session_ends_with_its_link(
    client: httpx.AsyncClient, world: World, browser: Browser
) -> None:
    subject, _ = await new_consent(client, world)
    link = await issue_link(client, world, subject, lifetime_seconds=600)
    assert (await browser.open(link)).status_code == 303
    world.clock.advance(599)
    assert (await browser.get("/s/consents")).status_code == 200
    world.clock.advance(1)
    ended = await browser.get("/s/consents")
    assert ended.status_code == 403
    # The browser is told to forget the cookie.
    assert (
        'accord_s=""' in ended.headers["set-cookie"] or "Max-Age=0" in ended.headers["set-cookie"]
    )


async def test_revoking_ends_the_session_the_code_and_the_token_at_once(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    subject, _ = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    unused = await issue_link(client, world, subject)
    assert (await browser.open(link)).status_code == 303
    bearer = {"Authorization": f"Bearer {link['token']}"}
    assert (await client.get(f"/v1/subjects/{subject}/consents", headers=bearer)).status_code == 200
    staff = world.headers("vsp", Role.supervisor)
    for one in (link, unused):
        assert (
            await client.delete(f"/v1/access-links/{one['id']}", headers=staff)
        ).status_code == 204
    assert (await browser.get("/s/consents")).status_code == 403
    assert (await client.get(f"/v1/subjects/{subject}/consents", headers=bearer)).status_code == 401
    stranger = new_browser(app)
    async with stranger.http:
        await _neutral(stranger, code_of(unused))
    # Idempotent: a second DELETE changes nothing.
    before = db.dump()
    assert (await client.delete(f"/v1/access-links/{link['id']}", headers=staff)).status_code == 204
    assert db.dump() == before
    revoked = [d["link_id"] for a, d in await _actions(app) if a == "access_link.revoked"]
    assert revoked == [link["id"], unused["id"]]


@pytest.mark.security
async def test_B01_only_the_owners_case_staff_end_a_link(
    client: httpx.AsyncClient, world: World, db: TestDatabase
) -> None:
    subject, _ = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    url = f"/v1/access-links/{link['id']}"
    before = db.dump()
    for role in Role:
        if role in (Role.caseworker, Role.supervisor):
            continue
        assert (await client.delete(url, headers=world.headers("vsp", role))).status_code == 403
    # Another organization's case staff: 404, as for a random id (the role check
    # comes first, as everywhere: other roles learn nothing from their 403).
    for org in ("shelter", "unrelated"):
        for role in Role:
            r = await client.delete(url, headers=world.headers(org, role))
            expected = 404 if role in (Role.caseworker, Role.supervisor) else 403
            assert r.status_code == expected, (org, role)
    random_id = f"/v1/access-links/{uuid.uuid4()}"
    assert (
        await client.delete(random_id, headers=world.headers("vsp", Role.caseworker))
    ).status_code == 404
    no_token = await client.delete(url)
    assert no_token.status_code == 401
    assert db.dump() == before
    assert (
        await client.delete(url, headers=world.headers("vsp", Role.caseworker))
    ).status_code == 204


async def test_two_requests_racing_with_one_code_open_one_session(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    """The code is claimed with a conditional update: of two tabs opening it, one wins."""
    import asyncio

    subject, _ = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    first, second = new_browser(app), new_browser(app)
    async with first.http, second.http:
        results = await asyncio.gather(first.open(link), second.open(link))
    assert sorted(r.status_code for r in results) == [303, 404]


async def test_guessing_codes_is_rate_limited_and_a_refusal_over_the_limit_stores_nothing(
    app_settings: Settings, clock: Any, db: TestDatabase
) -> None:
    from service.app import create_app

    settings = app_settings.model_copy(update={"rate_limit_failed_auth": "3/minute"})
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        guesser = new_browser(application)
        async with guesser.http:
            for _ in range(3):
                assert (await guesser.get("/s/" + "c" * 26)).status_code == 404
            before = db.dump()
            refused = await guesser.get("/s/" + "d" * 26)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert db.dump() == before
