"""An event as the feed shows it and as a webhook's body carries it (the same JSON)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class EventRead(BaseModel):
    id: uuid.UUID = Field(description="The event's id; a webhook's `webhook-id` header")
    seq: int = Field(description="The event's number in the organization's feed: 1, 2, 3, ...")
    type: str = Field(description="The event type (docs/notifications.md)")
    timestamp: datetime
    object_type: str
    object_id: uuid.UUID
    data: dict[str, object] = Field(
        description="Identifiers, states, times, reason codes and organization ids only"
    )


class EventPage(BaseModel):
    items: list[EventRead]
    next_after: int = Field(
        description="Pass as `after` to read on; equal to `after` when there is nothing new"
    )
