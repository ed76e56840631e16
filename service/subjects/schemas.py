"""Subjects carry no identifying data: only a random id, the owner and a minor flag."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class SubjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    is_minor: bool = False


class SubjectRead(BaseModel):
    id: uuid.UUID
    owner_org_id: uuid.UUID
    is_minor: bool
    created_at: datetime
