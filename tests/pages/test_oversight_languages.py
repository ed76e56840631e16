"""Issue 25: the oversight pages in every shipped language, with no untranslated
string: each page rendered through catalogs that record every string asked for
that they do not hold (the catalogs themselves are checked, with the survivor
pages' strings, by tests/pages/test_languages.py). Both engines."""

from __future__ import annotations

import gettext
from typing import Any

import pytest

from service.auth.principals import Role
from service.pages import catalogs
from service.pages.site import Site
from tests.pages.oversight_support import page_of, sign_in_with, signed_in
from tests.pages.support import Browser, new_browser
from tests.pages.test_languages import _confirmed, _Strict
from tests.support.databases import TestDatabase
from tests.support.world import World

SHIPPED = ("en", "es", "vi")


@pytest.mark.parametrize("lang", SHIPPED[1:])
async def test_every_oversight_page_asks_only_for_translated_strings(
    lang: str, app: Any, world: World, db: TestDatabase, browser: Browser
) -> None:
    loaded = catalogs.load_translations()
    strict = {code: _Strict(code, inner, _confirmed(code)) for code, inner in loaded.items()}
    translations: dict[str, gettext.NullTranslations] = dict(strict)
    app.state.pages = Site.build(
        app.state.settings, app.state.policy_engine.taxonomy, translations=translations
    )
    world.clock.advance(45 * 86400)  # a quarter with a report
    pages = [await browser.get(f"/o/sign-in?lang={lang}")]
    pages.append(await sign_in_with(browser, "not-a-token"))
    await signed_in(browser, world, "oversight", Role.auditor)
    pages.append(await browser.get("/o/collaborations"))
    pages.append(await browser.get(page_of(world)))
    pages.append(await browser.get("/o/collaborations/x"))
    stranger = new_browser(app)
    async with stranger.http:
        stranger.http.cookies.set("accord_lang", lang, domain="accord.test", path="/o")
        pages.append(await stranger.get("/o/collaborations"))
        pages.append(await stranger.post("/o/sign-in", {}))
    assert [p.status_code for p in pages] == [200, 401, 200, 200, 404, 401, 403]
    for page in pages:
        assert f'<html lang="{lang}"' in page.text, page.url
    assert strict[lang].misses == []
    assert "<svg" in pages[3].text  # the report's charts were drawn in this language
