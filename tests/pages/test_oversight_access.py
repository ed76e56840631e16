"""Issue 25, the oversight page: who may open it, and how a browser signs in.

Oversight staff see every collaboration; an auditor of a member organization sees
that collaboration; an auditor of an organization in another collaboration gets the
same 404 page as a random id; staff without the auditor role, outside oversight,
are refused at sign-in. A survivor's access link (its session cookie or its API
token) reaches nothing here. The token is taken in a POST form only: never from a
URL, never echoed, never put in a cookie. A revoked token ends the session at once,
a forged or expired cookie is no session, a form from elsewhere changes nothing,
and failed sign-ins count against the address's limit. Both engines."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jwt

from service.app import create_app
from service.auth.principals import Role
from service.clock import FrozenClock
from service.collaborations import service as collab_service
from service.collaborations.schemas import AgreementInput, CollaborationCreate
from service.pages.oversight_access import SESSION_COOKIE, SESSION_SECONDS
from service.settings import Settings
from tests.pages.oversight_support import (
    page_of,
    sign_in_with,
    signed_in,
    token_for,
)
from tests.pages.support import CSRF, SAME_ORIGIN_FORM, Browser, issue_link, new_browser
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import BOOTSTRAP, World


async def _second_collaboration(app: Any, world: World) -> uuid.UUID:
    """Another task force, whose only member is the unrelated organization."""
    async with app.state.sessionmaker() as session:
        first = await collab_service.get_visible(
            session, principal=BOOTSTRAP, collab_id=world.collaboration_id
        )
        versions = await collab_service.agreement_versions(session, [first.id])
        latest = versions[first.id][0]
        agreement = AgreementInput.model_validate(
            {
                "flows": latest.flows,
                "effective_from": latest.effective_from,
                "effective_to": latest.effective_to,
                "document_sha256": latest.document_sha256,
            }
        )
        other = await collab_service.create(
            session,
            principal=BOOTSTRAP,
            data=CollaborationCreate(name="Other task force", agreement=agreement),
            vocabulary=app.state.vocabulary,
            clock=world.clock,
        )
        await collab_service.add_member(
            session,
            principal=BOOTSTRAP,
            collab_id=other.id,
            org_id=world.orgs["unrelated"],
            clock=world.clock,
        )
        await session.commit()
        return other.id


async def test_oversight_staff_see_every_collaboration_and_an_auditor_only_their_own(
    app: Any, world: World, db: TestDatabase, browser: Browser, other_browser: Browser
) -> None:
    other = await _second_collaboration(app, world)
    await signed_in(browser, world, "oversight", Role.auditor)
    listing = await browser.get("/o/collaborations")
    assert listing.status_code == 200
    assert "Test task force" in listing.text
    assert "Other task force" in listing.text
    assert (await browser.get(page_of(world))).status_code == 200
    assert (await browser.get(f"/o/collaborations/{other}")).status_code == 200

    # An auditor of the unrelated organization: a member of the other collaboration only.
    await signed_in(other_browser, world, "unrelated", Role.auditor)
    listing = await other_browser.get("/o/collaborations")
    assert "Other task force" in listing.text
    assert "Test task force" not in listing.text
    assert (await other_browser.get(f"/o/collaborations/{other}")).status_code == 200
    refused = await other_browser.get(page_of(world))
    unknown = await other_browser.get(f"/o/collaborations/{uuid.uuid4()}")
    assert refused.status_code == unknown.status_code == 404
    assert refused.text == unknown.text  # nothing tells "exists" from "not yours"
    assert "Test task force" not in refused.text


async def test_a_members_auditor_sees_the_page_and_its_other_staff_are_refused(
    app: Any, world: World, db: TestDatabase, browser: Browser, other_browser: Browser
) -> None:
    await signed_in(browser, world, "vsp", Role.auditor)
    assert (await browser.get(page_of(world))).status_code == 200
    for org, role in (
        ("vsp", Role.caseworker),
        ("vsp", Role.supervisor),
        ("police", Role.investigator),
    ):
        fresh = new_browser(app)
        async with fresh.http:
            r = await sign_in_with(fresh, token_for(world, org, role))
            assert r.status_code == 403, (org, role)
            assert SESSION_COOKIE not in fresh.http.cookies
            assert (await fresh.get(page_of(world))).status_code == 401


async def test_a_survivor_access_link_cannot_reach_the_oversight_pages(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    subject, _consent = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    assert (await browser.open(link)).status_code == 303
    survivor_session = browser.http.cookies.get("accord_s")
    assert survivor_session
    for path in ("/o/collaborations", page_of(world), "/o/audit-export"):
        assert (await browser.get(path)).status_code == 401, path
    # The survivor's session secret presented as an oversight session: no session.
    browser.http.cookies.set(SESSION_COOKIE, survivor_session, domain="accord.test", path="/o")
    assert (await browser.get(page_of(world))).status_code == 401
    # The survivor's API token in the sign-in form: refused like any bad token.
    refused = await sign_in_with(browser, link["token"])
    assert refused.status_code == 401
    assert "was not accepted" in refused.text
    assert (await browser.get(page_of(world))).status_code == 401


async def test_the_token_is_taken_only_from_the_form_and_never_kept_or_shown(
    app: Any, world: World, db: TestDatabase, browser: Browser
) -> None:
    token = token_for(world, "oversight", Role.auditor)
    # In a URL it does nothing: no session, no redirect that carries it on.
    for path in (f"/o/sign-in?token={token}", f"{page_of(world)}?token={token}"):
        r = await browser.get(path)
        assert SESSION_COOKIE not in browser.http.cookies
        assert token not in r.text
        assert token not in r.headers.get("location", "")
    r = await browser.get("/o/collaborations", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401  # the page takes no bearer header either
    form = await browser.get("/o/sign-in")
    assert 'method="post" action="/o/sign-in"' in form.text
    signed = await sign_in_with(browser, token)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"]
    assert token not in cookie
    for part in token.split("."):
        assert part not in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/o" in cookie
    assert "Max-Age=600" in cookie  # the token's own expiry (10 minutes) comes first
    page = await browser.get(page_of(world))
    assert page.status_code == 200
    assert token not in page.text


async def test_a_revoked_token_ends_the_session_at_once(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    token = token_for(world, "oversight", Role.auditor)
    assert (await sign_in_with(browser, token)).status_code == 303
    assert (await browser.get(page_of(world))).status_code == 200
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    r = await client.post(
        f"/v1/organizations/{world.orgs['oversight']}/revoked-tokens",
        json={"jti": jti},
        headers=world.headers("oversight", Role.org_admin, sub="admin"),
    )
    assert r.status_code == 200, r.text
    assert (await browser.get(page_of(world))).status_code == 401
    assert (await sign_in_with(browser, token)).status_code == 401


async def test_the_session_ends_with_its_time_and_a_forged_cookie_is_no_session(
    app: Any, world: World, db: TestDatabase, browser: Browser
) -> None:
    now = int(world.clock.now().timestamp())
    long_lived = world.tokens.mint(
        world.orgs["oversight"], [Role.auditor], "olive", iat=now, exp=now + 3000
    )
    signed = await sign_in_with(browser, long_lived)
    assert f"Max-Age={SESSION_SECONDS}" in signed.headers["set-cookie"]  # 30 minutes at most
    cookie = browser.http.cookies[SESSION_COOKIE]
    body, mac = cookie.split(".")
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    browser.http.cookies.set(SESSION_COOKIE, f"{forged}.{mac}", domain="accord.test", path="/o")
    assert (await browser.get(page_of(world))).status_code == 401
    browser.http.cookies.set(SESSION_COOKIE, cookie, domain="accord.test", path="/o")
    assert (await browser.get(page_of(world))).status_code == 200
    world.clock.advance(SESSION_SECONDS - 60)
    assert (await browser.get(page_of(world))).status_code == 200
    world.clock.advance(61)  # the token itself still has 1000 s to live
    assert (await browser.get(page_of(world))).status_code == 401


async def test_forms_from_elsewhere_or_without_their_token_change_nothing(
    app: Any, world: World, db: TestDatabase, browser: Browser
) -> None:
    token = token_for(world, "oversight", Role.auditor)
    form = await browser.get("/o/sign-in")
    csrf = CSRF.search(form.text)
    assert csrf is not None
    elsewhere = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    for data, headers in (
        ({"csrf": csrf.group(1), "token": token}, elsewhere),
        ({"token": token}, SAME_ORIGIN_FORM),
        ({"csrf": "x" * 43, "token": token}, SAME_ORIGIN_FORM),
    ):
        r = await browser.post("/o/sign-in", data, headers=headers)
        assert r.status_code == 403, data
        assert SESSION_COOKIE not in browser.http.cookies
    # Another browser's sign-in form token does not fit this browser's pre-session.
    stranger = new_browser(app)
    async with stranger.http:
        r = await stranger.post("/o/sign-in", {"csrf": csrf.group(1), "token": token})
        assert r.status_code == 403
    await signed_in(browser, world, "oversight", Role.auditor)
    out = await browser.post("/o/sign-out", {})
    assert out.status_code == 403
    assert (await browser.get(page_of(world))).status_code == 200
    page = await browser.get("/o/collaborations")
    sign_out = CSRF.search(page.text)
    assert sign_out is not None
    out = await browser.post("/o/sign-out", {"csrf": sign_out.group(1)})
    assert out.status_code == 303
    assert (await browser.get(page_of(world))).status_code == 401


async def test_failed_sign_ins_count_against_the_address_and_store_nothing(
    app_settings: Settings, clock: FrozenClock, db: TestDatabase
) -> None:
    settings = app_settings.model_copy(update={"rate_limit_failed_auth": "3/minute"})
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        guesser = new_browser(application)
        async with guesser.http:
            for _ in range(3):
                r = await sign_in_with(guesser, "not-a-token")
                assert r.status_code == 401
                assert "was not accepted" in r.text
            before = db.dump()
            refused = await sign_in_with(guesser, "not-a-token")
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            assert "Too many tries" in refused.text
            assert db.dump() == before
