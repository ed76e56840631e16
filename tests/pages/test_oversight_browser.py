"""Issue 25, the oversight page in a real browser (Debian's Chromium through
Playwright, against `accord serve` on the test's database): an officer signs in
with a staff token in the form, opens the collaboration, and sees the report
(charts and tables), the duties past their date with their age, and the
checkpoint's status ("nothing to compare" on the first visit, "verified" once the
log grew); axe-core finds no violation at 320 and 1280 px in every shipped
language, nothing scrolls sideways at 320 px, nothing is fetched from another site,
and the console stays clean (the page has no script). Screenshots go to
artifacts/screenshots/oversight-*.png (SQLite run). Both engines."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from playwright.async_api import Page
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from service.auth.principals import Role
from service.records_requests.models import Obligation, Review
from tests.pages.oversight_support import make_duties, token_for
from tests.pages.real_browser import (
    SCREENSHOTS,
    Live,
    axe_report,
    chromium,
    overflow,
    screenshots,
    serve,
    visit,
)
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World

SHIPPED = ("en", "es", "vi")
OVERDUE_DAYS = {"obligation": 12, "review": 20}


async def _duties_weeks_ago(live: Live, db: TestDatabase) -> None:
    """A court-ordered release delivered and an emergency release, made through the
    API; then their dates moved back, as if they had happened weeks ago (the
    service runs on the wall clock)."""
    await make_duties(live.api, live.world)
    engine = create_async_engine(db.url)
    try:
        async with async_sessionmaker(engine)() as session:
            for model, kind in ((Obligation, "obligation"), (Review, "review")):
                for duty in (await session.scalars(select(model))).all():
                    back = duty.due_at - duty.created_at + timedelta(days=OVERDUE_DAYS[kind])
                    duty.created_at -= back
                    duty.due_at -= back
            await session.commit()
    finally:
        await engine.dispose()


async def _top_of_page(page: Page, name: str) -> None:
    """What a desktop screen shows first (the full page is long): for the docs."""
    await page.set_viewport_size({"width": 1280, "height": 1100})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), animations="disabled")
    await page.set_viewport_size({"width": 320, "height": 800})


async def _check(page: Page, name: str, problems: list[str]) -> None:
    for width in (1280, 320):
        await page.set_viewport_size({"width": width, "height": 800})
        report = await axe_report(page)
        if report:
            problems.append(f"{name} at {width} px: {report}")
    if (extra := await overflow(page)) > 0:
        problems.append(f"{name} scrolls sideways by {extra} px at 320 px")


async def test_the_oversight_page_in_chromium(
    db: TestDatabase, key_dir: Path, world: World, tmp_path: Path
) -> None:
    problems: list[str] = []
    shoot = db.engine == "sqlite"
    async with serve(db, key_dir, world, tmp_path / "server.log") as live, chromium() as browser:
        await _duties_weeks_ago(live, db)
        seen = await visit(browser, live.base)
        page = seen.page
        await page.goto(f"{live.base}/o/sign-in")
        await _check(page, "sign-in", problems)
        if shoot:
            await screenshots(page, "oversight-sign-in-en")
        await page.fill("#token", token_for(world, "oversight", Role.auditor))
        await page.click('form[action="/o/sign-in"] button')
        assert page.url == f"{live.base}/o/collaborations"
        assert "token" not in page.url
        await _check(page, "collaborations", problems)
        await page.click("text=Test task force")
        assert page.url == f"{live.base}/o/collaborations/{world.collaboration_id}"
        assert await page.text_content("h1") == "Test task force"

        # The duties, with their age in days.
        rows = await page.locator("#overdue-heading ~ div table tbody tr").all_inner_texts()
        assert len(rows) == 2, rows
        assert any("Tell the survivor" in r and "vsp org" in r for r in rows), rows
        assert any("Review an emergency release" in r for r in rows), rows
        ages = sorted(int(r.split("\t")[-1]) for r in rows)
        assert ages == sorted(OVERDUE_DAYS.values())

        # The checkpoint: nothing seen before; then the log grows and it verifies.
        status = page.locator("#checkpoint-status")
        assert "status-first" in (await status.get_attribute("class") or "")
        await make_kit(live.api, live.world)
        await page.reload()
        assert "status-verified" in (await status.get_attribute("class") or "")
        assert "Verified" in await status.inner_text()

        # The report: charts drawn inline with their names, and the tables.
        charts = page.locator("figure svg[role=img]")
        assert await charts.count() >= 9
        assert await page.locator("table caption").count() >= 10
        assert "suppressed" in await page.inner_text("#report-heading ~ div table")
        assert await page.get_attribute("a[href='/o/audit-export']", "download") is not None

        for lang in SHIPPED:
            await page.goto(f"{live.base}/o/collaborations/{world.collaboration_id}?lang={lang}")
            assert await page.get_attribute("html", "lang") == lang
            await _check(page, f"report in {lang}", problems)
            if shoot:
                await screenshots(page, f"oversight-report-{lang}")
                await _top_of_page(page, f"oversight-report-{lang}-1280-top")
        await page.goto(f"{live.base}/o/collaborations/00000000-0000-0000-0000-000000000000")
        await _check(page, "not found", problems)
        seen.console_errors = [e for e in seen.console_errors if "status of 4" not in e]
        seen.clean()
    assert problems == [], "\n\n".join(problems)
