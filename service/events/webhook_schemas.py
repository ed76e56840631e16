"""Request and response models for webhook endpoints (API.md, second wave).

An endpoint stores no free text: its URL, the event types it wants and whether it
is paused. Its signing secret appears in two responses only, the creation's and a
rotation's (`WebhookEndpointWithSecret`), and is never readable again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from service.events.catalog import EventType
from service.schemas import StrictInput

WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
EventTypes = Annotated[
    list[EventType],
    Field(
        min_length=1,
        max_length=len(EventType),
        description="The event types this endpoint receives (docs/notifications.md); "
        "each at most once. `webhook.test` is sent by POST .../test only.",
    ),
]


class WebhookEndpointCreate(StrictInput):
    url: WebhookUrl = Field(
        description="https (plain http outside production only); must resolve to public "
        "addresses unless its network is in ACCORD_WEBHOOK_ALLOWED_NETWORKS"
    )
    event_types: EventTypes


class WebhookEndpointUpdate(StrictInput):
    """Name at least one property; a property left out is kept. Resuming (`paused`:
    false) changes nothing else."""

    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    paused: bool | None = None

    @model_validator(mode="after")
    def _something_and_no_nulls(self) -> WebhookEndpointUpdate:
        if not self.model_fields_set:
            raise ValueError("name at least one of url, event_types, paused")
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(
                f"{', '.join(nulls)} may not be null (leave a property out to keep it)"
            )
        return self


class WebhookEndpointRead(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    url: str
    event_types: list[str]
    paused: bool
    failing_since: datetime | None = Field(
        description="Set when a delivery exhausted its retries; cleared by the next success"
    )
    previous_secret_until: datetime | None = Field(
        description="After a rotation: until when the previous secret also signs (v1)"
    )
    created_at: datetime
    created_by: str


class WebhookEndpointWithSecret(WebhookEndpointRead):
    secret: str = Field(
        description="`whsec_` + base64 of 32 random bytes: the endpoint's HMAC key (v1). "
        "Shown in this response only; store it now."
    )


class WebhookEndpointPage(BaseModel):
    items: list[WebhookEndpointRead]
    next_cursor: str | None


class WebhookAttemptRead(BaseModel):
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null if none")
    error: str | None = Field(description="An error code (timeout, refused, ...), never a body")
    duration_ms: int


class WebhookDeliveryRead(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID = Field(description="The event's id: the `webhook-id` header")
    event_type: str
    event_seq: int = Field(description="The event's number in the organization's feed")
    status: str = Field(description="pending, succeeded, failed, or cancelled (endpoint deleted)")
    attempts: int = Field(description="Attempts since the delivery was (re)queued")
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending)")
    created_at: datetime
    delivered_at: datetime | None
    history: list[WebhookAttemptRead] = Field(
        description="The most recent attempts (at most 20), oldest first"
    )


class WebhookDeliveryPage(BaseModel):
    items: list[WebhookDeliveryRead] = Field(description="Newest event first")
    next_before: int | None = Field(
        description="Pass as `before` for older deliveries; null when there are none"
    )


class WebhookSigningKey(BaseModel):
    public_key: str = Field(description="`whpk_` + base64 of the Ed25519 public key")
    scheme: Literal["v1a"] = "v1a"
    algorithm: Literal["Ed25519"] = "Ed25519"
