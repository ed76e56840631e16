"""Issue 20: what every page carries. Every response under /s/ (pages, redirects, error
pages, the receipt, the style sheet and the script) has the strict CSP, DENY
framing, no referrer and no-store. Every HTML page has `lang` and `dir`, the quick
exit (a link that works without JavaScript plus the service's own script that
replaces the page), the private-browsing note, a CSRF token in every form, no
inline script or style, no asset from elsewhere, and a title that names nothing
about the person. Both engines."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from typing import Any

import httpx

from service.pages.site import SECURITY_HEADERS
from tests.pages.support import Browser, code_of, issue_link, new_browser, title_of
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World

EXIT_URL = "https://www.google.com/"
# Words a title must never carry: it shows in tab lists, history and task switchers.
TELLING_WORDS = ("survivor", "traffick", "victim", "abuse", "shelter", "police")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self.forms: list[list[tuple[str, dict[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "form":
            self.forms.append([])
        elif self.forms and tag == "input":
            self.forms[-1].append((tag, attributes))

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1][0] == "script" and data.strip():
            self.inline_script = True


def check_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (response.url, name)
    assert "no-store" in response.headers["cache-control"], response.url
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def check_page(response: httpx.Response, secrets: list[str]) -> None:
    check_headers(response)
    html = response.text
    assert re.search(r'<html lang="[a-z]{2}" dir="(ltr|rtl)">', html), response.url
    parser = _Tags()
    parser.feed(html)
    assert not parser.inline_script, response.url
    assert "<style" not in html, response.url
    assert " style=" not in html, response.url
    leave = [a for t, a in parser.tags if t == "a" and a.get("id") == "leave-now"]
    assert [a["href"] for a in leave] == [EXIT_URL], response.url
    scripts = [a.get("src") for t, a in parser.tags if t == "script"]
    assert scripts == ["/s/static/exit.js"], response.url
    for tag, attributes in parser.tags:
        for name in ("src", "href", "action"):
            value = attributes.get(name)
            if value is None or (tag == "a" and attributes.get("id") == "leave-now"):
                continue
            assert value.startswith(("/", "#")), (response.url, tag, value)
            assert not value.startswith("//"), (response.url, tag, value)
    for form in parser.forms:
        assert any(a.get("name") == "csrf" and a.get("value") for _t, a in form), response.url
    assert re.search(r"<p class=\"note\">[^<]{40,}</p>", html), response.url  # private browsing
    title = title_of(html).lower()
    for secret in secrets:
        assert secret.lower() not in title, (response.url, secret)
    for word in TELLING_WORDS:
        assert word not in title, (response.url, word)


async def test_every_page_and_response_under_s_carries_the_safety_headers(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    subject, consent = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    secrets = [subject, consent["id"], link["id"], code_of(link)] + [
        f"{name} org" for name in world.orgs
    ]
    opened = await browser.open(link)
    assert opened.status_code == 303
    check_headers(opened)
    html_pages: list[httpx.Response] = []
    for path in ("/s/consents", "/s/disclosures", "/s/help"):
        html_pages.append(await browser.get(path))
    for language in ("en", "es", "vi"):
        html_pages.append(await browser.get(f"/s/help?lang={language}"))
    receipt = await browser.get(f"/s/consents/{consent['id']}/receipt")
    assert receipt.status_code == 200
    assert receipt.headers["content-disposition"].startswith("attachment")
    check_headers(receipt)
    token = await browser.csrf()
    asked = await browser.post(f"/s/consents/{consent['id']}/withdraw", {"csrf": token})
    html_pages.append(asked)
    done = await browser.post(f"/s/consents/{consent['id']}/withdraw/confirm", {"csrf": token})
    assert done.status_code == 303
    check_headers(done)
    html_pages.append(await browser.get(done.headers["location"]))
    html_pages.append(await browser.get(f"/s/consents/{uuid.uuid4()}/receipt"))  # 404
    html_pages.append(await browser.post(f"/s/consents/{consent['id']}/withdraw", {}))  # 403
    stranger = new_browser(app)
    async with stranger.http:
        html_pages.append(await stranger.open(link))  # used: the neutral page
        html_pages.append(await stranger.get("/s/consents"))  # no session
    assert [p.status_code for p in html_pages] == [200] * 7 + [200, 404, 403, 404, 403]
    for page in html_pages:
        check_page(page, secrets)
    for asset, media in (("pages.css", "text/css"), ("exit.js", "text/javascript")):
        response = await browser.get(f"/s/static/{asset}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
        check_headers(response)
    script = (await browser.get("/s/static/exit.js")).text
    assert "location.replace" in script
    assert 'getElementById("leave-now")' in script
