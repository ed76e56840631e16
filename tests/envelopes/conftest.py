"""Fixtures for envelope tests: three organizations A (sender), B (recipient), C (outsider)."""

from __future__ import annotations

import pytest

from .support import Party, new_party


@pytest.fixture(scope="module")
def alice() -> Party:
    return new_party()


@pytest.fixture(scope="module")
def bob() -> Party:
    return new_party()


@pytest.fixture(scope="module")
def carol() -> Party:
    return new_party()
