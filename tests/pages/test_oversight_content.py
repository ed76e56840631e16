"""Issue 25, the oversight page's content: the duties past their date with their
age, the report exactly as `build_report` computes it (every cell a number or
"suppressed", never a small count), and the checkpoint: "verified" when the log
only grew since the checkpoint this viewer's page saw (or, on a first visit, the
last one the service kept), and a failure when the stored tree was rewritten (a
fault injected as the database owner, past the append-only triggers). Both engines."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from sqlalchemy import select, text

from service.audit.tree import record_checkpoint
from service.auth.principals import Principal, Role
from service.db.engine import session_scope
from service.records_requests.models import Obligation, Review
from service.reports.compute import build_report
from service.reports.schemas import Period
from service.sectors import Sector
from tests.pages.oversight_support import checkpoint_result, make_duties, page_of, signed_in
from tests.pages.support import Browser, new_browser
from tests.referrals.support import make_kit
from tests.support.databases import TestDatabase
from tests.support.world import World

ROW = re.compile(
    r"<tr>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>.*?<td class=\"number\">(\d+)</td>", re.S
)


async def test_overdue_duties_are_listed_with_their_age(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    await make_duties(client, world)
    await signed_in(browser, world, "oversight", Role.auditor)
    before = await browser.get(page_of(world))
    assert "Nothing is overdue." in before.text
    world.clock.advance(30 * 86400)
    await signed_in(browser, world, "oversight", Role.auditor)  # a token of the new time
    page = await browser.get(page_of(world))
    assert page.status_code == 200
    now = world.clock.now()
    async with app.state.sessionmaker() as session:
        obligation = (await session.scalars(select(Obligation))).one()
        review = (await session.scalars(select(Review))).one()
    expected = {
        ("Tell the survivor about a compelled release", "vsp org", (now - obligation.due_at).days),
        ("Review an emergency release", "vsp org", (now - review.due_at).days),
    }
    shown = {(html.unescape(k), h, int(d)) for k, h, d in ROW.findall(page.text)}
    assert shown == expected
    assert all(days >= 20 for _k, _h, days in expected)  # really past due, by weeks
    # The VSP's auditor sees its own duties; the shelter's auditor sees none of them.
    async with new_browser(app).http as http:
        vsp = await signed_in(Browser(http), world, "vsp", Role.auditor)
        mine = await vsp.get(page_of(world))
        assert {(html.unescape(k), h, int(d)) for k, h, d in ROW.findall(mine.text)} == expected
    async with new_browser(app).http as http:
        shelter = await signed_in(Browser(http), world, "shelter", Role.auditor)
        theirs = await shelter.get(page_of(world))
        assert theirs.status_code == 200
        assert ROW.findall(theirs.text) == []
        assert "Nothing is overdue." in theirs.text


CELL = re.compile(r'<td class="number( suppressed)?">([^<]*)</td>')


async def test_the_report_is_shown_as_computed_with_suppressed_cells_marked(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    kit = await make_kit(client, world)
    for _ in range(12):
        referral = await kit.send()
        assert (await kit.deliver(referral["id"])).status_code == 200
    world.clock.advance(45 * 86400)  # 2026-11-22 + 45 days: the fourth quarter has ended
    await signed_in(browser, world, "oversight", Role.auditor)
    page = await browser.get(page_of(world, "2026-Q4"))
    assert page.status_code == 200, page.text
    async with app.state.sessionmaker() as session:
        oversight = Principal(
            "olive", world.orgs["oversight"], Sector.oversight, frozenset({Role.auditor})
        )
        report = await build_report(
            session,
            world.collaboration_id,
            Period.parse("2026-Q4"),
            viewer=oversight,
            settings=app.state.settings,
            clock=world.clock,
            audit=False,
        )
    expected = []
    for table in report.tables:
        one_way = len(table.columns) == 1
        for r, cells in enumerate(table.cells):
            row = list(cells)
            if not one_way and table.row_totals is not None:
                row.append(table.row_totals[r])
            expected += [("suppressed" if c.suppressed else str(c.count)) for c in row]
        last = [] if one_way else list(table.column_totals or [])
        if last and table.total is not None:
            last.append(table.total)
        elif one_way and table.total is not None:
            last = [table.total]
        expected += [("suppressed" if c.suppressed else str(c.count)) for c in last]
    shown_cells = [
        (v, bool(flag)) for flag, v in CELL.findall(page.text.split('id="report-heading"')[1])
    ]
    report_cells = [v for v, _ in shown_cells if not v.endswith(" h") and v != "withheld"]
    assert report_cells[: len(expected)] == expected
    assert all(flag == (v == "suppressed") for v, flag in shown_cells if v in expected)
    shown_numbers = [int(v) for v in expected if v.isdigit()]
    assert 12 in shown_numbers  # victim services to shelter: 12 referrals
    assert all(n >= report.threshold for n in shown_numbers)  # no small count, ever
    assert "suppressed" in expected
    svg = page.text.split("<svg", 1)[1]
    assert 'role="img"' in svg.split(">", 1)[0]
    assert "Victim services → Shelter" in page.text


async def _tamper_tree(app: Any, engine: str) -> None:
    """As the database owner: rewrite the leftmost stored node of every level."""
    unlock = (
        ["DROP TRIGGER audit_nodes_no_update"]
        if engine == "sqlite"
        else ["ALTER TABLE audit_nodes DISABLE TRIGGER audit_nodes_no_change"]
    )
    async with app.state.engine.begin() as conn:
        for statement in unlock:
            await conn.execute(text(statement))
        await conn.execute(
            text("UPDATE audit_nodes SET hash = :forged WHERE idx = 0"), {"forged": b"\xab" * 32}
        )


async def test_the_checkpoint_verifies_while_the_log_grows_and_fails_when_rewritten(
    app: Any, client: httpx.AsyncClient, world: World, db: TestDatabase, browser: Browser
) -> None:
    await signed_in(browser, world, "oversight", Role.auditor)
    first = await browser.get(page_of(world))
    assert checkpoint_result(first.text) == "first"  # nothing seen, nothing kept yet
    assert "accord_o_seen" in first.headers["set-cookie"]
    await make_kit(client, world)  # the log grows
    grown = await browser.get(page_of(world))
    assert checkpoint_result(grown.text) == "verified"
    assert "since this page last showed it to you" in grown.text
    # A checkpoint the service keeps, and a browser that has seen nothing.
    async with session_scope(app.state.sessionmaker) as session:
        kept = await record_checkpoint(
            session,
            signer=app.state.keyring.checkpoint,
            origin=app.state.settings.audit_origin,
            clock=world.clock,
        )
        assert kept is not None
    await make_kit(client, world)
    async with new_browser(app).http as http:
        fresh = await signed_in(Browser(http), world, "oversight", Role.auditor)
        page = await fresh.get(page_of(world))
        assert checkpoint_result(page.text) == "verified"
        assert "since the previous checkpoint the service signed" in page.text

        await _tamper_tree(app, db.engine)
        for viewer in (browser, fresh):  # against the page's own and the kept checkpoint
            for _ in range(2):  # and again: the failure stays until someone looks
                failed = await viewer.get(page_of(world))
                assert failed.status_code == 200
                assert checkpoint_result(failed.text) == "failed"
                assert "the log was changed, not only added to" in failed.text
                assert "accord_o_seen" not in failed.headers.get("set-cookie", "")
