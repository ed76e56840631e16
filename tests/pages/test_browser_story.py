"""Issue 20, the whole story in a real browser (Chromium, Playwright) against the
service as deployed: the caseworker's tool creates an access link through the API;
the survivor opens its URL, and the code leaves the address bar, the history and
every Referer at once (303); the page is in Spanish, the language the consent was
recorded in, and shows the consent and the shelter's delivery in plain words; the
survivor switches to English and withdraws with the two forms, JavaScript turned
off; the shelter's next delivery withholds every field; quick exit leaves, with and
without JavaScript, and leaves no Back-button trail; the caseworker ends the link
and the next page load is refused. Both engines."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, Request

from service.auth.principals import Role
from tests.pages.real_browser import EXIT_URL, caseworker_link, chromium, serve, visit
from tests.pages.support import code_of
from tests.referrals.support import PLANTED, make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World


async def _text(page: Page) -> str:
    text: str = await page.inner_text("body")
    return text


async def test_the_survivor_story_in_a_real_browser(
    db: TestDatabase, key_dir: Path, world: World, tmp_path: Path
) -> None:
    async with serve(db, key_dir, world, tmp_path / "server.log") as live, chromium() as browser:
        kit = await make_kit(live.api, world)
        referral = await kit.send()
        first = await kit.deliver(referral["id"])
        assert first.status_code == 200, first.text
        assert len(first.json()["released"]) == len(PLANTED)
        link = await caseworker_link(live, kit.subject)
        code = code_of({"url": link["url"].removeprefix(live.base)})
        assert link["url"] == f"{live.base}/s/{code}"

        # The survivor's phone, JavaScript off: forms and links must work without it.
        phone = await visit(browser, live.base, javascript=False)
        page = phone.page
        sent: list[Request] = []
        page.on("request", lambda r: sent.append(r))
        opened = await page.goto(link["url"])
        assert opened is not None
        assert opened.status == 200
        assert page.url == f"{live.base}/s/consents"
        hop = opened.request.redirected_from
        assert hop is not None
        assert hop.url == link["url"]
        hop_response = await hop.response()
        assert hop_response is not None
        assert hop_response.status == 303
        # Back leads to where the tab was before the link, not to the code's URL.
        await page.go_back()
        assert page.url == "about:blank"
        await page.go_forward()
        assert page.url == f"{live.base}/s/consents"
        assert await page.get_attribute("html", "lang") == "es"
        text = await _text(page)
        for words in (
            "shelter org",
            "(un refugio)",
            "Para enviarle a otros servicios que pueden ayudarle",
            "Quién es usted: su nombre, fecha de nacimiento y documentos de identidad",
            "Estado: Vigente",
        ):
            assert words in text, words

        await page.click('nav a[href="/s/disclosures"]')
        assert page.url == f"{live.base}/s/disclosures"
        text = await _text(page)
        assert "shelter org" in text
        assert "Usted dio su permiso" in text

        # The language switcher (a plain link); the choice is remembered.
        await page.click('a[hreflang="en"]')
        assert await page.get_attribute("html", "lang") == "en"
        assert "Who received information about you" in await _text(page)
        await page.click('nav a[href="/s/consents"]')
        assert await page.get_attribute("html", "lang") == "en"
        assert "Status: In effect" in await _text(page)

        # Withdraw: the button, the confirmation page, then the result page.
        await page.click('form[action$="/withdraw"] button')
        text = await _text(page)
        assert "Withdraw this permission?" in text
        assert "Information that was already delivered cannot be taken back." in text
        await page.click('form[action$="/withdraw/confirm"] button')
        consent_id = str(kit.consent["id"])
        assert page.url == f"{live.base}/s/consents/{consent_id}/withdrawn"
        assert "Permission withdrawn" in await _text(page)

        # The shelter's next delivery withholds every field.
        again = await kit.deliver(referral["id"])
        assert again.status_code == 200, again.text
        assert again.json()["released"] == []
        assert sorted(w["name"] for w in again.json()["withheld"]) == sorted(PLANTED)
        await page.click('nav a[href="/s/consents"]')
        assert "Status: Withdrawn" in await _text(page)
        assert await page.locator('form[action$="/withdraw"]').count() == 0

        # The code was requested once, never sent on as a Referer, never in history.
        assert [r.url for r in sent if code in r.url] == [link["url"]]
        for r in sent:
            assert "referer" not in await r.all_headers(), r.url

        # Quick exit without JavaScript: an ordinary link to the neutral site.
        await page.click("#leave-now")
        assert page.url == EXIT_URL

        # With JavaScript, on a new tab with the same session: location.replace, so
        # Back does not return to the page it left.
        cookies = await phone.context.cookies()
        desk = await visit(browser, live.base, javascript=True)
        await desk.context.add_cookies(cookies)
        page2 = desk.page
        await page2.goto(f"{live.base}/s/help")
        assert "Help" in await page2.title()
        before = await page2.evaluate("history.length")
        await page2.click("#leave-now")
        await page2.wait_for_url(EXIT_URL)
        assert await page2.evaluate("history.length") == before  # replaced, not added
        await page2.go_back()
        assert not page2.url.startswith(live.base), page2.url
        history = await page2.evaluate("history.length")
        assert history == before

        phone.clean()
        desk.clean()

        # The caseworker ends the link: the next page load is refused, in both.
        ended = await live.api.delete(
            f"/v1/access-links/{link['id']}", headers=world.headers("vsp", Role.caseworker)
        )
        assert ended.status_code == 204, ended.text
        refused = await page2.goto(f"{live.base}/s/consents")
        assert refused is not None
        assert refused.status == 403
        assert "This page cannot be opened" in await _text(page2)
        assert not [c for c in await desk.context.cookies() if c["name"] == "accord_s"]
        refused = await page.goto(f"{live.base}/s/disclosures")
        assert refused is not None
        assert refused.status == 403
        # The code itself, used again, is refused too (it worked once).
        reused = await page.goto(link["url"])
        assert reused is not None
        assert reused.status == 404
