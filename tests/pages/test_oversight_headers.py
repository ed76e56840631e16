"""Issue 25: what every oversight response carries, as the survivor pages do
(tests/pages/test_headers.py): the strict Content-Security-Policy, DENY framing,
no referrer, no-store, on pages, redirects, error pages, the style sheet and the
export. Every HTML page has `lang` and `dir`, no script at all, no inline style,
only links to this service, a CSRF token in every POST form, and a title that
names no collaboration or organization. The export downloads as a file and is
recorded in the log first. Both engines."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import httpx
from sqlalchemy import select

from service.audit.models import AuditEntry
from service.auth.principals import Role
from tests.pages.oversight_support import page_of, sign_in_with, signed_in, token_for
from tests.pages.support import SAME_ORIGIN_FORM, Browser, new_browser, title_of
from tests.pages.test_headers import check_headers
from tests.support.databases import TestDatabase
from tests.support.world import World


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.forms: list[tuple[str, list[dict[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "form":
            self.forms.append(((attributes.get("method") or "get").lower(), []))
        elif self.forms and tag == "input":
            self.forms[-1][1].append(attributes)


def check_page(response: httpx.Response, secrets: list[str]) -> None:
    check_headers(response)
    html = response.text
    assert re.search(r'<html lang="[a-z]{2}" dir="(ltr|rtl)">', html), response.url
    parser = _Tags()
    parser.feed(html)
    assert [t for t, _a in parser.tags if t == "script"] == [], response.url
    assert "<style" not in html, response.url
    assert " style=" not in html, response.url
    for _tag, attributes in parser.tags:
        for name in ("src", "href", "action"):
            value = attributes.get(name)
            if value is not None:
                assert value.startswith(("/", "#")), (response.url, value)
                assert not value.startswith("//"), (response.url, value)
    for method, inputs in parser.forms:
        if method == "post":
            assert any(a.get("name") == "csrf" and a.get("value") for a in inputs), response.url
    title = title_of(html)
    for secret in secrets:
        assert secret not in title, (response.url, secret)


async def test_every_oversight_response_carries_the_safety_headers(
    app: Any, world: World, db: TestDatabase, browser: Browser
) -> None:
    secrets = ["Test task force", *(f"{name} org" for name in world.orgs)]
    pages = [await browser.get("/o/sign-in")]
    pages.append(await browser.get("/o/collaborations"))  # 401: not signed in
    pages.append(await sign_in_with(browser, "not-a-token"))  # 401: the form again
    pages.append(await browser.post("/o/sign-in", {"token": "x"}))  # 403: no form token
    signed = await sign_in_with(browser, token_for(world, "oversight", Role.auditor))
    assert signed.status_code == 303
    check_headers(signed)
    pages.append(await browser.get("/o/collaborations"))
    for lang in ("en", "es", "vi"):
        pages.append(await browser.get(f"{page_of(world)}?lang={lang}"))
    pages.append(await browser.get("/o/collaborations/not-an-id"))  # 404
    pages.append(await browser.get(f"{page_of(world)}?period=2026-13"))  # no such period
    pages.append(await browser.get(f"{page_of(world)}?period={'x' * 40}"))
    outsider = new_browser(app)
    async with outsider.http:
        pages.append(await sign_in_with(outsider, token_for(world, "vsp", Role.caseworker)))
    assert [p.status_code for p in pages] == [
        200,
        401,
        401,
        403,
        200,
        200,
        200,
        200,
        404,
        404,
        404,
        403,
    ]
    for page in pages:
        check_page(page, secrets)
    style = await browser.get("/o/static/oversight.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    check_headers(style)


async def test_the_audit_export_downloads_as_a_file_and_is_audited(
    app: Any, world: World, db: TestDatabase, browser: Browser
) -> None:
    await signed_in(browser, world, "oversight", Role.auditor)
    page = await browser.get(page_of(world))
    assert 'href="/o/audit-export"' in page.text
    export = await browser.get("/o/audit-export")
    assert export.status_code == 200, export.text
    check_headers(export)
    assert export.headers["content-disposition"].startswith("attachment")
    lines = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    assert len(lines) > 3
    async with app.state.sessionmaker() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert "audit.exported" in actions
    assert "report.generated" in actions  # the page's report, audited like the API's
    # Oversight staff without the auditor role see the page but get no export.
    other = new_browser(app)
    async with other.http:
        await signed_in(other, world, "oversight", Role.org_admin)
        page = await other.get(page_of(world))
        assert page.status_code == 200
        assert "/o/audit-export" not in page.text
        assert (await other.get("/o/audit-export")).status_code == 404


async def test_forms_are_accepted_only_as_html_forms_under_o(
    app: Any, world: World, db: TestDatabase, browser: Browser
) -> None:
    r = await browser.http.post(
        "/o/sign-in",
        content=b'{"token": "x"}',
        headers={**SAME_ORIGIN_FORM, "Content-Type": "application/json"},
    )
    assert r.status_code == 415
