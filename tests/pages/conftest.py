"""Fixtures for the survivor pages: a browser of the survivor's own, and another one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.pages.support import Browser, new_browser


@pytest.fixture
async def browser(app: Any) -> AsyncIterator[Browser]:
    b = new_browser(app)
    async with b.http:
        yield b


@pytest.fixture
async def other_browser(app: Any) -> AsyncIterator[Browser]:
    b = new_browser(app)
    async with b.http:
        yield b
