"""`accord report`: the command fetches through the client library, writes JSON or
CSV (one header, every period's rows), shows a progress bar on stderr, and says
what went wrong without a traceback."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from accord_client.api import AccordClient
from typer.testing import CliRunner

from service.auth.principals import Role
from service.cli import app as cli_app
from service.reports.cli import ReportCommandError, run_report
from tests.reports.conftest import Fed


class LoopTransport(httpx.BaseTransport):
    """The sync client, in a worker thread, calling the app on the test's loop."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def go() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result()


async def _run(fed: Fed, **options: Any) -> int:
    loop = asyncio.get_running_loop()
    token = fed.world.tokens.mint(fed.world.orgs["vsp"], [Role.caseworker])

    def factory(*, base_url: str, token: str) -> AccordClient:
        return AccordClient(
            base_url=base_url, token=token, transport=LoopTransport(fed.world.app, loop)
        )

    return await asyncio.to_thread(
        run_report, url="http://accord.test", token=token, collab_id=fed.collab_id,
        client_factory=factory, **options,
    )  # fmt: skip


async def test_breakdown_csv_has_every_quarter_and_the_year(
    fed: Fed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.csv"
    fetched = await _run(fed, period_text="2026", as_csv=True, breakdown=True, output=out)
    assert fetched == 5
    rows = list(csv.DictReader(io.StringIO(out.read_text(), newline="")))
    assert {r["period"] for r in rows} == {"2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4", "2026"}
    assert sum(1 for r in rows if r["collaboration"] == "collaboration") == 0
    assert "period" in capsys.readouterr().err  # the bar, on stderr


async def test_json_of_one_period(fed: Fed, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert await _run(fed, period_text="2026-Q2", as_csv=False, breakdown=False, output=out) == 1
    body = json.loads(out.read_text())
    assert body["period"]["label"] == "2026-Q2"
    assert body["collaboration_id"] == str(fed.collab_id)


async def test_refusals_are_reported_without_a_traceback(fed: Fed) -> None:
    with pytest.raises(ReportCommandError, match="422"):
        await _run(fed, period_text="2026-07", as_csv=False, breakdown=False, output=None)
    with pytest.raises(ReportCommandError, match="period"):
        await _run(fed, period_text="2026-13", as_csv=False, breakdown=False, output=None)


def test_the_command_exits_2_on_a_bad_period() -> None:
    result = CliRunner().invoke(
        cli_app,
        ["report", "00000000-0000-0000-0000-000000000001", "--period", "2026-13", "--token", "t"],
    )
    assert result.exit_code == 2
    assert "accord report: --period" in result.output
