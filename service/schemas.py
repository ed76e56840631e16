"""Base classes shared by every domain's pydantic schemas."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictInput(BaseModel):
    """Request bodies: unknown properties are refused (mass assignment, B11), and the
    parsed input is immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
