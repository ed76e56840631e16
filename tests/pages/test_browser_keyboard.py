"""Issue 20, keyboard only, in a real browser at 320 px: the first Tab reaches the
"skip to the main text" link, which is shown when focused and moves focus to the
main text; Tab reaches every link and button of each page in document order, each
with a visible focus outline and not hidden under the sticky quick-exit bar (WCAG
2.1.1, 2.4.1, 2.4.3, 2.4.7, 2.4.11); the quick exit is the second Tab stop and
leaves with Enter; the language switcher and both withdrawal forms work with the
keyboard alone. Both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tests.pages.real_browser import EXIT_URL, caseworker_link, chromium, serve, visit
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World

FOCUSABLE = 'a[href], button, input:not([type="hidden"]), select, textarea, [tabindex]'
# What the focused element is, and whether a sighted keyboard user can see it.
FOCUS = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const r = e.getBoundingClientRect();
  const style = getComputedStyle(e);
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + Math.min(r.height / 2, 12));
  return {
    key: e.tagName + " " + (e.getAttribute("href") || e.textContent.trim()),
    outline: e.matches(":focus-visible") && style.outlineStyle !== "none"
      && parseFloat(style.outlineWidth) >= 2,
    shown: r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= innerHeight
      && r.left >= 0 && r.right <= innerWidth,
    unobscured: hit !== null && (e === hit || e.contains(hit)),
  };
}"""
ALL = f"""() => Array.from(document.querySelectorAll('{FOCUSABLE}'))
  .filter(e => e.tabIndex >= 0)
  .map(e => e.tagName + " " + (e.getAttribute("href") || e.textContent.trim()))"""


async def _focus(page: Page) -> dict[str, Any] | None:
    focused: dict[str, Any] | None = await page.evaluate(FOCUS)
    return focused


async def _tab_walk(page: Page) -> list[dict[str, Any]]:
    """Every Tab stop from the top of a freshly loaded page until focus leaves it."""
    stops: list[dict[str, Any]] = []
    for _ in range(80):
        await page.keyboard.press("Tab")
        focused = await _focus(page)
        if focused is None or (stops and focused["key"] == stops[0]["key"]):
            return stops
        stops.append(focused)
    raise AssertionError("focus never left the page")


async def _tab_to(page: Page, selector: str) -> None:
    for _ in range(80):
        await page.keyboard.press("Tab")
        if await page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


async def test_every_action_is_reachable_by_keyboard_with_visible_focus(
    db: TestDatabase, key_dir: Path, world: World, tmp_path: Path
) -> None:
    async with serve(db, key_dir, world, tmp_path / "server.log") as live, chromium() as browser:
        kit = await make_kit(live.api, world)
        referral = await kit.send()
        assert (await kit.deliver(referral["id"])).status_code == 200
        link = await caseworker_link(live, kit.subject)
        seen = await visit(browser, live.base)
        page = seen.page
        await page.goto(link["url"])
        await page.goto(f"{live.base}/s/consents?lang=en")

        # The skip link: the first stop, visible when focused; Enter moves focus.
        await page.keyboard.press("Tab")
        first = await _focus(page)
        assert first is not None
        assert first["key"] == "A #main"
        assert first["shown"]
        assert first["outline"]
        await page.keyboard.press("Enter")
        assert await page.evaluate("document.activeElement.id") == "main"

        for path in ("/s/consents", "/s/disclosures", "/s/help"):
            await page.goto(f"{live.base}{path}")
            stops = await _tab_walk(page)
            assert [s["key"] for s in stops] == await page.evaluate(ALL), path
            assert [s["key"] for s in stops[:2]] == ["A #main", f"A {EXIT_URL}"]
            for stop in stops:
                assert stop["outline"], (path, stop)
                assert stop["shown"], (path, stop)
                assert stop["unobscured"], (path, stop)

        # The language switcher, by keyboard.
        await page.goto(f"{live.base}/s/help")
        await _tab_to(page, 'a[hreflang="es"]')
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{live.base}/s/help?lang=es")
        assert await page.get_attribute("html", "lang") == "es"

        # Withdraw, by keyboard: the button (Enter), then the confirmation (Space).
        await page.goto(f"{live.base}/s/consents?lang=en")
        await _tab_to(page, 'form[action$="/withdraw"] button')
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"{live.base}/s/consents/{kit.consent['id']}/withdraw")
        await _tab_to(page, 'form[action$="/withdraw/confirm"] button')
        await page.keyboard.press(" ")
        await page.wait_for_url(f"{live.base}/s/consents/{kit.consent['id']}/withdrawn")
        assert "Permission withdrawn" in await page.inner_text("h1")

        # The quick exit: the second Tab stop; Enter leaves.
        await page.goto(f"{live.base}/s/disclosures")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.id") == "leave-now"
        await page.keyboard.press("Enter")
        await page.wait_for_url(EXIT_URL)
        seen.clean()
