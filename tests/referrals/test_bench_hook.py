"""The benchmark's baseline endpoint exists only behind test_hooks (which production
refuses), and it runs the same authentication as every other endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from service.app import create_app
from service.auth.principals import Role
from service.operations.bench_hooks import CREATE_TABLE
from service.settings import Environment, Settings
from service.web.middleware import app_routes
from tests.support.world import World


def test_baseline_route_absent_without_test_hooks(tmp_path: Path) -> None:
    settings = Settings(
        environment=Environment.test,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db",
        key_dir=tmp_path / "keys",
        test_hooks=False,
    )
    routes = {path for _route, path, _methods in app_routes(create_app(settings))}
    assert "/v1/referrals" in routes
    assert "/v1/_bench/baseline" not in routes
    with pytest.raises(ValueError, match="test_hooks"):
        Settings(environment=Environment.production, test_hooks=True)


async def test_baseline_inserts_one_row_after_authentication(
    app: Any, client: httpx.AsyncClient, world: World
) -> None:
    async with app.state.sessionmaker() as session:
        await session.execute(text(CREATE_TABLE))
        await session.commit()
    assert (await client.post("/v1/_bench/baseline")).status_code == 401
    r = await client.post("/v1/_bench/baseline", headers=world.headers("shelter", Role.caseworker))
    assert r.status_code == 204
    async with app.state.sessionmaker() as session:
        count = (await session.execute(text("SELECT count(*) FROM bench_baseline"))).scalar_one()
    assert count == 1
