"""Issue 20: the code never appears in logs. The request log and the metrics name the
route template (`/s/{code}`), never the path; `accord serve` runs uvicorn without
its access log (which prints raw paths). Checked in process (every log record's
every attribute) and against the real server's output. Both engines."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.web.observability import JsonFormatter
from tests.pages.support import code_of, issue_link, new_browser
from tests.support.databases import TestDatabase
from tests.support.factories import new_consent
from tests.support.processes import ROOT, free_port, service_env, wait_until_healthy
from tests.support.world import World


async def test_the_code_is_in_no_log_record_and_no_metric(
    app: Any, client: httpx.AsyncClient, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    subject, _ = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    code = code_of(link)
    caplog.set_level(logging.DEBUG)
    browser = new_browser(app)
    async with browser.http:
        assert (await browser.open(link)).status_code == 303
        assert (await browser.open(link)).status_code == 404  # refused: logged too
        session_cookie = browser.http.cookies.get("accord_s")
        assert (await browser.get("/s/consents")).status_code == 200
    assert session_cookie
    formatter = JsonFormatter()
    routes = []
    for record in caplog.records:
        if record.name.startswith(("httpx", "httpcore")):
            continue  # the test's own client, which logs the URLs it requests
        text = formatter.format(record) + " ".join(str(v) for v in record.__dict__.values())
        assert code not in text, record.getMessage()
        assert session_cookie not in text
        if getattr(record, "event", None) == "http.request":
            routes.append(record.__dict__["route"])
    assert routes.count("/s/{code}") == 2
    metrics = (await client.get("/metrics")).text
    assert 'route="/s/{code}"' in metrics
    assert code not in metrics


async def _serve(db: TestDatabase, key_dir: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`accord serve` as deployed: its own logging (JSON to stderr at INFO) and
    uvicorn options; development settings so that it logs."""
    port = free_port()
    env = service_env(db, key_dir, ACCORD_ENVIRONMENT="development", ACCORD_LOG_LEVEL="INFO")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from service.cli import main; main()",
        "serve", "--host", "127.0.0.1", "--port", str(port),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return server, f"http://127.0.0.1:{port}"


async def test_the_real_server_logs_the_route_template_and_never_the_code(
    client: httpx.AsyncClient, world: World, db: TestDatabase, key_dir: Path
) -> None:
    # The server runs on the wall clock: issue the link at the real time.
    world.clock.set(datetime.now(UTC))
    subject, _ = await new_consent(client, world)
    link = await issue_link(client, world, subject)
    code = code_of(link)
    server, base = await _serve(db, key_dir)
    try:
        await wait_until_healthy(base)
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
            opened = await http.get(f"/s/{code}")
            assert opened.status_code == 303, opened.text
            assert (await http.get("/s/consents")).status_code == 200
            assert (await http.get(f"/s/{code}?lang=es")).status_code == 404
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(server.communicate(), timeout=30)
    output = (stdout + stderr).decode("utf-8", "replace")
    assert code not in output
    requests = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"http.request"' in line
    ]
    assert [r["route"] for r in requests if r["route"].startswith("/s/")] == [
        "/s/{code}",
        "/s/consents",
        "/s/{code}",
    ]
    assert "GET /s/" not in output  # no uvicorn access line
