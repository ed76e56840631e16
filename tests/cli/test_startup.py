"""Start-up that explains itself (issue 21): production refuses with one message
that names every setting to change, never a traceback; SQLite and automatic
migrations in production are allowed with a warning; the SQLite file and the key
directory are private from birth; `accord token issue` signs only for an
organization that exists."""

from __future__ import annotations

import asyncio
import logging
import logging.config
import stat
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app as cli
from service.keyring import load_keyring
from service.settings import Settings
from service.storage import make_engine
from service.web.observability import JsonFormatter
from service.web.serving import log_config
from tests.support.databases import TestDatabase

UNSAFE = {
    "ACCORD_ENVIRONMENT": "production",
    "ACCORD_TEST_HOOKS": "true",
    "ACCORD_JWT_LEEWAY_SECONDS": "600",
    "ACCORD_JWT_JWKS_URL": "http://idp.example/jwks",
}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_production_lists_every_problem_at_once_without_a_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["serve"], env=UNSAFE)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # not an uncaught error
    message = result.stderr
    assert "Traceback" not in message
    # An invalid value, and the combinations checked once the values are valid.
    for variable in (
        "ACCORD_JWT_LEEWAY_SECONDS",
        "ACCORD_TEST_HOOKS",
        "ACCORD_JWT_JWKS_URL",
        "ACCORD_JWT_ISSUER",
    ):
        assert f"  - {variable}:" in message, message
    assert "change 4 setting(s)" in message


def test_production_names_every_missing_key_file(tmp_path: Path) -> None:
    env = {
        "ACCORD_ENVIRONMENT": "production",
        "ACCORD_JWT_JWKS_URL": "https://idp.example/jwks",
        "ACCORD_JWT_ISSUER": "https://idp.example",
        "ACCORD_KEY_DIR": str(tmp_path / "keys"),
        "ACCORD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/accord.db",
    }
    result = CliRunner().invoke(cli, ["serve"], env=env)
    assert result.exit_code == 2
    assert "checkpoint.ed25519, receipt.ed25519" in result.stderr
    assert "accord keys init" in result.stderr
    assert not (tmp_path / "accord.db").exists()


def test_sqlite_and_automatic_migrations_in_production_are_warned() -> None:
    production = Settings(
        environment="production", jwt_jwks_file=Path("/x"), jwt_issuer="https://idp"
    )
    warned = "\n".join(production.startup_warnings())
    assert "ACCORD_DATABASE_URL: SQLite in production" in warned
    assert "ACCORD_AUTO_MIGRATE" in warned
    assert Settings(environment="development").startup_warnings() == []


def test_uvicorn_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    before = root.handlers[:], root.level
    try:
        logging.config.dictConfig(log_config("INFO"))
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
        (handler,) = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        root.handlers[:], _ = before
        root.setLevel(before[1])
    assert '"message": "Started server process [1]"' in capsys.readouterr().err


def test_sqlite_file_and_key_directory_are_private(tmp_path: Path) -> None:
    database = tmp_path / "accord.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database}", key_dir=tmp_path / "a" / "keys"
    )

    async def touch() -> None:
        engine = make_engine(settings)
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        finally:
            await engine.dispose()

    asyncio.run(touch())
    assert _mode(database) == 0o600
    load_keyring(settings, create=True)
    assert _mode(settings.key_dir) == 0o700
    assert all(_mode(f) == 0o600 for f in settings.key_dir.iterdir())


def test_token_issue_refuses_an_unknown_organization(db: TestDatabase, tmp_path: Path) -> None:
    env = {
        "ACCORD_ENVIRONMENT": "development",
        "ACCORD_DATABASE_URL": db.url,
        "ACCORD_KEY_DIR": str(tmp_path / "keys"),
    }
    runner = CliRunner()
    unknown = str(uuid.uuid4())
    args = ["token", "issue", "--roles", "caseworker", "--sub", "alice", "--org"]
    refused = runner.invoke(cli, [*args, unknown], env=env)
    assert refused.exit_code == 2
    assert f"no active organization {unknown}" in refused.stderr
    assert "eyJ" not in refused.stdout
    created = runner.invoke(
        cli, ["org", "create", "--name", "Clinic", "--sector", "healthcare"], env=env
    )
    assert created.exit_code == 0, created.output
    org_id = created.stdout.split('"id": "')[1].split('"')[0]
    issued = runner.invoke(cli, [*args, org_id], env=env)
    assert issued.exit_code == 0, issued.output
    assert issued.stdout.startswith("eyJ")


def test_token_issue_without_a_database_creates_none(tmp_path: Path) -> None:
    env = {
        "ACCORD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/accord.db",
        "ACCORD_KEY_DIR": str(tmp_path / "keys"),
    }
    args = ["token", "issue", "--roles", "caseworker", "--sub", "a", "--org", str(uuid.uuid4())]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 2
    assert "no database at" in result.stderr
    assert not (tmp_path / "accord.db").exists()
