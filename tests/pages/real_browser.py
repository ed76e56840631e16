"""The survivor pages in a real browser (issue 20): Debian's Chromium driven by
Playwright, against the service as deployed (`accord serve` in its own process on a
free loopback port, on the test's database), with axe-core and screenshots.

- Chromium: `ACCORD_TEST_CHROMIUM`, else `chromium` on PATH (Debian's package,
  which `.ci/run` installs). Without it every browser test is skipped with
  `NO_CHROMIUM` as its reason, never passed. Playwright's own browser download is
  not used.
- Nothing leaves the machine: every request of the browser to another origin is
  recorded and aborted, except the quick exit's address, which the test answers
  itself with a neutral page (`EXIT_URL`).
- axe-core comes from the PyPI package `axe-playwright-python`, which bundles
  `axe.min.js` (no CDN).
- Screenshots go to `artifacts/screenshots/` (git-ignored; the folder to collect
  as a CI run's artefact).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from service.auth.principals import Role
from tests.support.databases import TestDatabase
from tests.support.processes import ROOT, free_port, service_env, wait_until_healthy
from tests.support.world import World

NO_CHROMIUM = (
    "browser tests skipped: no Chromium found (set ACCORD_TEST_CHROMIUM or install "
    "Debian's package: apt-get install -y chromium; .ci/run installs it when run as root)"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EXIT_URL = "https://leave.example/"
NEUTRAL_PAGE = '<!doctype html><html lang="en"><title>Weather</title><p>Sunny, 21 °C.</p></html>'
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
WIDTHS = (320, 1280)
AXE = Axe()


def chromium_path() -> str | None:
    configured = os.environ.get("ACCORD_TEST_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium")


@dataclass
class Live:
    """The service in its own process, and the caseworker's tool talking to it."""

    base: str
    api: httpx.AsyncClient
    world: World
    log: Path


@asynccontextmanager
async def serve(
    db: TestDatabase, key_dir: Path, world: World, log: Path, **env: str
) -> AsyncIterator[Live]:
    """`accord serve` on the test's database; its base URL is the public one, so the
    access links it hands out are absolute. The service runs on the wall clock: the
    world's clock (the tokens the caseworker's tool sends) is set to now. Skipped
    without Chromium (before the service starts)."""
    if chromium_path() is None:
        pytest.skip(NO_CHROMIUM)
    world.clock.set(datetime.now(UTC))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {
        "ACCORD_PUBLIC_BASE_URL": base,
        "ACCORD_PAGES_EXIT_URL": EXIT_URL,
        # Development: the log is JSON at INFO, kept in `log` to read when a test fails.
        "ACCORD_ENVIRONMENT": "development",
        "ACCORD_LOG_LEVEL": "INFO",
        # No webhook dispatcher polling the database twice a second: on SQLite it
        # would only compete for the write lock with the test's own requests.
        "ACCORD_WEBHOOK_DISPATCH_IN_SERVE": "false",
        **env,
    }
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from service.cli import main; main()",
            "serve", "--host", "127.0.0.1", "--port", str(port),
            cwd=ROOT, env=service_env(db, key_dir, **settings), stdout=out, stderr=out,
        )  # fmt: skip
    try:
        await wait_until_healthy(base)
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as api:
            yield Live(base=base, api=api, world=world, log=log)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.wait(), timeout=20)
        except TimeoutError:
            server.kill()
            await server.wait()


async def caseworker_link(live: Live, subject: str) -> dict[str, Any]:
    """The caseworker's tool creates an access link through the API."""
    r = await live.api.post(
        f"/v1/subjects/{subject}/access-links",
        json={"lifetime_seconds": 3600},
        headers=live.world.headers("vsp", Role.caseworker),
    )
    assert r.status_code == 201, r.text
    link: dict[str, Any] = r.json()
    return link


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, with a fresh temporary profile (Playwright's
    `launch` creates one and deletes it afterwards); skipped without Chromium."""
    path = chromium_path()
    if path is None:
        pytest.skip(NO_CHROMIUM)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Visit:
    """One browsing context (its own cookies) and what it did that it must not."""

    context: BrowserContext
    page: Page
    base: str
    elsewhere: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def clean(self) -> None:
        """No request left for another site; no error in the console (a CSP
        violation is reported there)."""
        assert self.elsewhere == [], self.elsewhere
        assert self.console_errors == [], self.console_errors


async def visit(browser: Browser, base: str, *, javascript: bool = True, width: int = 320) -> Visit:
    context = await browser.new_context(
        java_script_enabled=javascript,
        viewport={"width": width, "height": 800},
        locale="en-US",
        accept_downloads=False,
    )
    page = await context.new_page()
    seen = Visit(context=context, page=page, base=base)

    async def route(r: Route) -> None:
        url = r.request.url
        if url.startswith(base + "/"):
            await r.continue_()
        elif url.startswith(EXIT_URL):
            await r.fulfill(status=200, content_type="text/html", body=NEUTRAL_PAGE)
        else:
            seen.elsewhere.append(url)
            await r.abort()

    await context.route("**/*", route)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    return seen


async def axe_report(page: Page) -> str:
    """axe-core's report of every rule it runs (WCAG 2.x A/AA and best practices);
    empty when there is no violation."""
    results = await AXE.run(page)
    if results.violations_count == 0:
        return ""
    return f"{page.url}\n{results.generate_report()}"


async def screenshots(page: Page, name: str) -> None:
    """The whole page at each width in WIDTHS, as `<name>-<width>.png`; the viewport
    goes back to the first width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 800})
        data = await page.screenshot(full_page=True, animations="disabled", caret="hide")
        target = SCREENSHOTS / f"{name}-{width}.png"
        partial = target.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(target)  # two engines' runs may write the same name at once
    await page.set_viewport_size({"width": WIDTHS[0], "height": 800})


async def overflow(page: Page) -> int:
    """How far the page is wider than the viewport (0 at any width is the goal)."""
    width: int = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


async def sticky_height(page: Page) -> int:
    """How much of the screen stays covered at the top when the page is scrolled to
    its end: the height of every sticky or fixed element still on screen."""
    height: int = await page.evaluate(
        """() => {
          window.scrollTo(0, document.documentElement.scrollHeight);
          let covered = 0;
          for (const e of document.querySelectorAll("body *")) {
            const position = getComputedStyle(e).position;
            if (position !== "sticky" && position !== "fixed") continue;
            const r = e.getBoundingClientRect();
            if (r.bottom > 0 && r.top < innerHeight) covered += r.height;
          }
          window.scrollTo(0, 0);
          return Math.round(covered);
        }"""
    )
    return height
