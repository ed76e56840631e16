"""Issue 20, accessibility in a real browser: axe-core reports zero violations on
every page in every shipped language, at 320 px and 1280 px; no page scrolls
sideways at 320 px (WCAG 1.4.10 reflow), and what stays on screen as it scrolls
(the quick-exit bar) is at most 96 px high; each page is saved as a screenshot at
both widths into artifacts/screenshots/ (docs/survivor-pages.md shows some; taken
in the SQLite run only, the pages being the same on both engines).
The pages: what you agreed to (one grant in effect, one withdrawn), who received
information (a delivery with a kind held back), help, the withdrawal's confirmation
and result, and the error pages (not found, form refused, link closed, too many
tries). Both engines."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from tests.pages.real_browser import (
    Live,
    axe_report,
    caseworker_link,
    chromium,
    overflow,
    screenshots,
    serve,
    sticky_height,
    visit,
)
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.world import World

SHIPPED = ("en", "es", "vi")
# What may stay at the top of a 320 px screen while the page scrolls (the quick-exit
# bar): at most the style sheet's scroll-padding (6rem), so focus is never under it.
MAX_STICKY = 96
# Three refusals of a used code show the "closed" page (one per language); the
# next three show "too many tries".
FAILED_AUTH_LIMIT = f"{len(SHIPPED)}/hour"


async def _check(page: Page, name: str, lang: str, problems: list[str], shoot: bool) -> None:
    assert await page.get_attribute("html", "lang") == lang, (name, page.url)
    for width in (1280, 320):
        await page.set_viewport_size({"width": width, "height": 800})
        report = await axe_report(page)
        if report:
            problems.append(f"{name} in {lang} at {width} px: {report}")
    if (extra := await overflow(page)) > 0:
        problems.append(f"{name} in {lang} scrolls sideways by {extra} px at 320 px")
    if (covered := await sticky_height(page)) > MAX_STICKY:
        problems.append(f"{name} in {lang}: {covered} px stay on screen when scrolled")
    if shoot:
        await screenshots(page, f"{name}-{lang}")


async def _story_so_far(live: Live) -> tuple[str, str, dict[str, Any]]:
    """A subject with two grants, a delivery with "contact" held back, and a link."""
    kit = await make_kit(live.api, live.world)
    referral = await kit.send()
    await kit.forbid_contact()  # held back at delivery
    assert (await kit.deliver(referral["id"])).status_code == 200
    _, second = await new_consent(live.api, live.world, subject=kit.subject)
    link = await caseworker_link(live, kit.subject)
    return str(kit.consent["id"]), str(second["id"]), link


async def test_every_page_in_every_language_passes_axe_and_reflows_at_320_px(
    db: TestDatabase, key_dir: Path, world: World, tmp_path: Path
) -> None:
    problems: list[str] = []
    shoot = db.engine == "sqlite"  # the same pages on both engines: one set of pictures
    async with (
        serve(
            db,
            key_dir,
            world,
            tmp_path / "server.log",
            ACCORD_RATE_LIMIT_FAILED_AUTH=FAILED_AUTH_LIMIT,
        ) as live,
        chromium() as browser,
    ):
        live_id, withdrawn_id, link = await _story_so_far(live)
        seen = await visit(browser, live.base)
        page = seen.page
        assert (await page.goto(link["url"])) is not None
        await page.click(f'form[action="/s/consents/{withdrawn_id}/withdraw"] button')
        await page.click('form[action$="/withdraw/confirm"] button')
        assert page.url.endswith(f"/s/consents/{withdrawn_id}/withdrawn")

        for lang in SHIPPED:
            await page.goto(f"{live.base}/s/consents?lang={lang}")
            await _check(page, "consents", lang, problems, shoot)
            await page.goto(f"{live.base}/s/disclosures")
            await _check(page, "disclosures", lang, problems, shoot)
            await page.goto(f"{live.base}/s/help")
            await _check(page, "help", lang, problems, shoot)
            await page.goto(f"{live.base}/s/consents")
            await page.click(f'form[action="/s/consents/{live_id}/withdraw"] button')
            await _check(page, "withdraw", lang, problems, shoot)
            await page.goto(f"{live.base}/s/consents/{withdrawn_id}/withdrawn")
            await _check(page, "withdrawn", lang, problems, shoot)
            await page.goto(f"{live.base}/s/consents/{uuid.uuid4()}/withdrawn")
            await _check(page, "not-found", lang, problems, shoot)
            # A form whose token was changed: refused, on a page of its own.
            await page.goto(f"{live.base}/s/consents")
            await page.eval_on_selector(
                'form[action$="/withdraw"] input[name="csrf"]', "e => { e.value = 'x'; }"
            )
            await page.click('form[action$="/withdraw"] button')
            await _check(page, "form-refused", lang, problems, shoot)
        for lang in SHIPPED:
            await page.goto(f"{link['url']}?lang={lang}")
            await _check(page, "closed", lang, problems, shoot)
        for lang in SHIPPED:
            response = await page.goto(f"{link['url']}?lang={lang}")
            assert response is not None
            assert response.status == 429
            await _check(page, "too-many", lang, problems, shoot)
        seen.console_errors = [e for e in seen.console_errors if "status of 4" not in e]
        seen.clean()
    assert problems == [], "\n\n".join(problems)
