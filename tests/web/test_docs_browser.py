"""/docs and /redoc in a real browser, offline (issue 21): Debian's Chromium against
`accord serve`, every request to another origin recorded and aborted
(tests/pages/real_browser.py). Each viewer must render the operations from the
service's own assets, with no request elsewhere and no console error (a CSP
violation is reported there). Skipped, with its reason, without Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pages.real_browser import chromium, serve, visit
from tests.support.databases import TestDatabase
from tests.support.world import World

pytestmark = pytest.mark.slow
REDOC_LOGO = "'https://cdn.redoc.ly/redoc/logo-mini.svg' violates the following Content Security"


async def test_swagger_ui_and_redoc_render_offline_under_their_csp(
    db: TestDatabase, key_dir: Path, world: World, tmp_path: Path
) -> None:
    if db.engine != "sqlite":
        pytest.skip("the pages hold no data: one engine is enough")
    async with serve(db, key_dir, world, tmp_path / "service.log") as live, chromium() as browser:
        swagger = await visit(browser, live.base, width=1280)
        await swagger.page.goto(live.base + "/docs")
        try:
            await swagger.page.wait_for_selector(".opblock", timeout=30_000)
        except Exception:
            swagger.clean()  # says why (a blocked request, a CSP violation)
            raise
        assert await swagger.page.locator("text=referrals_deliver").count() >= 1
        assert await swagger.page.locator("button.authorize").count() == 1
        swagger.clean()

        redoc = await visit(browser, live.base, width=1280)
        await redoc.page.goto(live.base + "/redoc")
        try:
            await redoc.page.wait_for_selector("[data-section-id]", timeout=30_000)
        except Exception:
            redoc.clean()
            raise
        # ReDoc's sidebar always asks for its maker's logo from their CDN (no option
        # turns it off); the page's CSP blocks it before any request is made, and the
        # browser reports that block. It is the one error allowed here.
        redoc.console_errors = [e for e in redoc.console_errors if REDOC_LOGO not in e]
        redoc.clean()

        problems = await visit(browser, live.base)
        await problems.page.goto(live.base + "/problems#not-found")
        assert await problems.page.locator("#not-found").count() == 1
        problems.clean()
