"""The service process outside tests: the objects built at start-up are frozen out
of the garbage collector's generations while it serves (service/app.py), so that a
full collection does not walk them (an 80 ms pause measured without this)."""

from __future__ import annotations

import gc
import inspect
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


def test_no_dependency_runs_in_the_thread_pool(tmp_path: Path) -> None:
    """FastAPI runs a plain `def` dependency in its thread pool: a hand-off to another
    thread and back on every request. Every dependency of every route is async."""
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from service.web.middleware import app_routes

    app = create_app(
        Settings(
            environment=Environment.test,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'test.db'}",
            key_dir=tmp_path / "keys",
            test_hooks=True,
        )
    )
    sync: set[str] = set()

    def walk(dependant: Dependant) -> None:
        for sub in dependant.dependencies:
            call = sub.call
            if call is not None and not (
                inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
            ):
                sync.add(getattr(call, "__qualname__", repr(call)))
            walk(sub)

    routes = [r for r, _path, _methods in app_routes(app) if isinstance(r, APIRoute)]
    assert len(routes) > 40
    for route in routes:
        walk(route.dependant)
    assert sync == set()
