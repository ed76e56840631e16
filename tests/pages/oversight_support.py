"""Helpers for the oversight pages' tests: sign a browser in with a staff token the
way a person does (the form, then its POST), and read what the page says."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx

from service.auth.principals import Role
from tests.pages.support import CSRF, SAME_ORIGIN_FORM, Browser
from tests.records_requests.support import DOC, VALUES, make_request_kit
from tests.support.world import World

STATUS = re.compile(r'<div class="card status status-(\w+)" id="checkpoint-status">')


def token_for(world: World, org: str, *roles: Role, sub: str = "olive") -> str:
    header = world.headers(org, *roles, sub=sub)["Authorization"]
    return header.removeprefix("Bearer ")


async def sign_in_with(browser: Browser, token: str) -> httpx.Response:
    form = await browser.get("/o/sign-in")
    assert form.status_code == 200, form.text
    csrf = CSRF.search(form.text)
    assert csrf is not None
    return await browser.post(
        "/o/sign-in", {"csrf": csrf.group(1), "token": token}, headers=SAME_ORIGIN_FORM
    )


async def signed_in(browser: Browser, world: World, org: str, *roles: Role) -> Browser:
    r = await sign_in_with(browser, token_for(world, org, *roles))
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/o/collaborations"
    return browser


def page_of(world: World, period: str | None = None) -> str:
    path = f"/o/collaborations/{world.collaboration_id}"
    return f"{path}?period={period}" if period else path


def checkpoint_result(html: str) -> str:
    match = STATUS.search(html)
    assert match is not None, "no checkpoint status on the page"
    return match.group(1)


def last_quarter(world: World) -> str:
    now = world.clock.now()
    quarter = (now.month - 1) // 3 + 1
    year, quarter = (now.year, quarter - 1) if quarter > 1 else (now.year - 1, 4)
    return f"{year}-Q{quarter}"


async def advance(world: World, app: Any, days: int) -> None:
    """Move the service's clock (the world's clock is the app's)."""
    assert app.state.clock is world.clock
    world.clock.advance(timedelta(days=days).total_seconds())


async def make_duties(client: httpx.AsyncClient, world: World) -> None:
    """A court-ordered release delivered (a duty to tell the survivor) and an
    emergency release (a review), both held by the VSP, made through the API."""
    kit = await make_request_kit(client, world)
    ordered = await kit.made(
        legal_basis="court_order",
        legal_reference="2026-CR-42",
        document_sha256=DOC,
        categories=["location"],
    )
    subject = await kit.subject()
    envelope = kit.seal(ordered, subject, {"location": VALUES["location"]})
    r = await kit.respond(ordered["id"], {"decision": "release", "envelope": envelope})
    assert r.status_code == 200, r.text
    assert (await kit.deliver(ordered["id"])).status_code == 200
    urgent = await kit.made(
        legal_basis="emergency", categories=["contact"], purpose="emergency_contact"
    )
    envelope = kit.seal(urgent, subject, {"contact": VALUES["contact"]})
    r = await kit.respond(
        urgent["id"], {"decision": "release", "envelope": envelope}, Role.supervisor, sub="sam"
    )
    assert r.status_code == 200, r.text
