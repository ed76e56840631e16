"""A generated federation in every report test, on each engine; the clock in 2027
so that every period of 2026 has ended."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from tests.reports.federation import Truth, build
from tests.support.world import World

AFTER = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)


@dataclass
class Fed:
    world: World
    collab_id: uuid.UUID
    truth: Truth

    def url(self, period: str, **extra: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"period": period, **extra}.items())
        return f"/v1/collaborations/{self.collab_id}/reports?{query}"


@pytest.fixture
async def fed(world: World) -> Fed:
    collab_id, truth = await build(world)
    world.clock.set(AFTER)
    return Fed(world, collab_id, truth)
