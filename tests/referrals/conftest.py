"""The referral kit, for every test module of this folder."""

from __future__ import annotations

import httpx
import pytest

from tests.referrals.support import Kit, make_kit
from tests.support.world import World


@pytest.fixture
async def kit(client: httpx.AsyncClient, world: World) -> Kit:
    return await make_kit(client, world)
