"""The service process outside tests: the objects built at start-up are frozen out
of the garbage collector's generations while it serves (service/app.py), so that a
full collection does not walk them (an 80 ms pause measured without this)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from service import app as app_module
from service.app import create_app
from service.settings import Environment, Settings


async def test_startup_objects_frozen_while_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A development app configures the process's logging; not this test's concern.
    monkeypatch.setattr(app_module, "configure_logging", lambda _level: None)
    settings = Settings(
        environment=Environment.development,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'dev.db'}",
        key_dir=tmp_path / "keys",
    )
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 10_000  # the app, SQLAlchemy, Cedar, ...
    assert gc.get_freeze_count() == 0  # collectable again after shutdown


async def test_tests_do_not_freeze(tmp_path: Path) -> None:
    settings = Settings(
        environment=Environment.test,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
        key_dir=tmp_path / "keys",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
