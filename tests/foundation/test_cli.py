"""The newcomer's path: `accord org create`, `accord token issue`, and the printed
tokens opening the API (issue 2, "what a user must be able to do"). `accord demo`
talks to a running service: tests/demo/test_sandbox_story.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from service.app import create_app
from service.cli import app as cli
from service.settings import Settings
from tests.support.databases import TestDatabase

ISSUE = ["token", "issue", "--org", "00000000-0000-4000-8000-000000000001"]


@pytest.fixture
def env(db: TestDatabase, tmp_path: Path) -> dict[str, str]:
    return {
        "ACCORD_ENVIRONMENT": "development",
        "ACCORD_DATABASE_URL": db.url,
        "ACCORD_KEY_DIR": str(tmp_path / "keys"),
    }


def _call(token: str, env: dict[str, str], method: str, path: str, **kw: object) -> httpx.Response:
    settings = Settings(
        environment="development",
        database_url=env["ACCORD_DATABASE_URL"],
        key_dir=Path(env["ACCORD_KEY_DIR"]),
    )

    async def run() -> httpx.Response:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return await http.request(
                    method, path, headers={"Authorization": f"Bearer {token}"}, **kw
                )

    return asyncio.run(run())


def test_org_create_then_token_issue(env: dict[str, str]) -> None:
    runner = CliRunner()
    created = runner.invoke(
        cli, ["org", "create", "--name", "Clinic", "--sector", "healthcare"], env=env
    )
    assert created.exit_code == 0, created.output
    org_id = json.loads(created.stdout)["id"]
    issued = runner.invoke(
        cli, ["token", "issue", "--org", org_id, "--roles", "caseworker", "--sub", "alice"], env=env
    )
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    r = _call(token, env, "POST", "/v1/subjects", json={})
    assert r.status_code == 201
    assert r.json()["owner_org_id"] == org_id


@pytest.mark.parametrize(
    "args",
    [
        ["--roles", "boss"],
        ["--roles", ""],
        ["--roles", "caseworker", "--lifetime", "999999"],
    ],
)
def test_token_issue_refuses_bad_input(env: dict[str, str], args: list[str]) -> None:
    result = CliRunner().invoke(cli, [*ISSUE, "--sub", "a", *args], env=env)
    assert result.exit_code == 2
    assert "eyJ" not in result.stdout


def test_token_issue_refused_when_an_identity_provider_is_configured(
    env: dict[str, str], tmp_path: Path
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    result = CliRunner().invoke(
        cli,
        [*ISSUE, "--roles", "caseworker", "--sub", "a"],
        env={**env, "ACCORD_JWT_JWKS_FILE": str(jwks)},
    )
    assert result.exit_code == 2
    assert "development tokens are only available" in result.stderr


def test_serve_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    """Two processes on one SQLite file would contend in SQLite's busy handler; the
    command says so before starting anything."""
    result = CliRunner().invoke(
        cli,
        ["serve", "--workers", "2"],
        env={"ACCORD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/accord.db"},
    )
    assert result.exit_code == 2, result.output
    assert "SQLite is served by one process" in result.output
    assert not (tmp_path / "accord.db").exists()
