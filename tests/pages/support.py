"""Helpers for the survivor pages' tests: a link issued through the API, a browser
(its own cookie jar) that opens it, the forms' CSRF token, and the pages to visit.

A `Browser` sends what a browser sends with a form from one of the pages:
`Sec-Fetch-Site: same-origin` and, because the pages set `Referrer-Policy:
no-referrer`, `Origin: null`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from service.auth.principals import Role
from tests.support.world import World

BASE = "http://accord.test"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
TITLE = re.compile(r"<title>(.*?)</title>", re.S)
SAME_ORIGIN_FORM = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}


async def issue_link(
    client: httpx.AsyncClient, world: World, subject: str, org: str = "vsp", **body: Any
) -> dict[str, Any]:
    r = await client.post(
        f"/v1/subjects/{subject}/access-links",
        json=body,
        headers=world.headers(org, Role.caseworker),
    )
    assert r.status_code == 201, r.text
    link: dict[str, Any] = r.json()
    return link


def code_of(link: dict[str, Any]) -> str:
    url: str = link["url"]
    assert url.startswith("/s/")
    return url.removeprefix("/s/")


@dataclass
class Browser:
    """One browser: its own cookies, following no redirect by itself."""

    http: httpx.AsyncClient

    async def open(self, link: dict[str, Any]) -> httpx.Response:
        return await self.http.get(f"/s/{code_of(link)}")

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(
        self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.http.post(
            path, data=data or {}, headers=SAME_ORIGIN_FORM if headers is None else headers
        )

    async def csrf(self) -> str:
        page = await self.get("/s/consents")
        assert page.status_code == 200, page.text
        match = CSRF.search(page.text)
        assert match is not None, "no form on the page"
        return match.group(1)

    async def withdraw(self, consent_id: str) -> httpx.Response:
        """Both forms, as a person would submit them: ask, then confirm."""
        token = await self.csrf()
        asked = await self.post(f"/s/consents/{consent_id}/withdraw", {"csrf": token})
        assert asked.status_code == 200, asked.text
        confirm = CSRF.search(asked.text)
        assert confirm is not None
        return await self.post(
            f"/s/consents/{consent_id}/withdraw/confirm", {"csrf": confirm.group(1)}
        )


def new_browser(app: Any) -> Browser:
    transport = httpx.ASGITransport(app=app)
    return Browser(httpx.AsyncClient(transport=transport, base_url=BASE))


def title_of(html: str) -> str:
    match = TITLE.search(html)
    assert match is not None
    return match.group(1)
