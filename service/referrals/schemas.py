"""Request and response bodies of the referral endpoints (API.md "Referrals")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from service.organizations.schemas import Service
from service.referrals.models import DeclineReason, ReferralStatus, Urgency
from service.schemas import StrictInput

SERVICE_CODE = r"^[a-z][a-z0-9_]{0,63}$"
RecipientWarning = Literal["recipient_not_accepting", "recipient_limited_hours"]


class ReferralCreate(StrictInput):
    subject_id: uuid.UUID
    recipient_org_id: uuid.UUID
    consent_id: uuid.UUID
    purpose: str = Field(max_length=64)
    services_requested: list[Service] = Field(
        default_factory=list, max_length=20, description="Services from the directory's list"
    )
    urgency: Urgency = Urgency.routine
    envelope: dict[str, Any] = Field(
        description="The sealed envelope (docs/envelope.md); the service never decrypts it"
    )


class DeclineRequest(StrictInput):
    reason: DeclineReason


class CloseRequest(StrictInput):
    outcome: str = Field(
        pattern=SERVICE_CODE,
        description="An outcome code (e.g. services_provided, survivor_disengaged); no free text",
    )


class FieldLabel(BaseModel):
    name: str
    category: str


class TimelineEvent(BaseModel):
    at: datetime
    event: str
    actor_org_id: uuid.UUID | None
    audit_seq: int | None = Field(description="The audit log entry that records the change")


class ReferralRead(BaseModel):
    """Metadata and timeline only: never a ciphertext or a sealed key."""

    id: uuid.UUID
    status: ReferralStatus
    sender_org_id: uuid.UUID
    recipient_org_id: uuid.UUID
    subject_id: uuid.UUID
    consent_id: uuid.UUID
    purpose: str
    services_requested: list[Service]
    urgency: Urgency
    envelope_id: str
    fields: list[FieldLabel]
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    decline_reason: DeclineReason | None
    outcome: str | None
    shredded_at: datetime | None = Field(
        description="When the ciphertexts and sealed keys were destroyed (metadata stays)"
    )
    timeline: list[TimelineEvent]
    recipient_warnings: list[RecipientWarning] = Field(
        description=(
            "What the directory said about the recipient when the referral was sent "
            "(it was taken all the same): recipient_not_accepting (not accepting "
            "referrals), recipient_limited_hours (not staffed around the clock). Also "
            "on the timeline, at the time of sending"
        )
    )


class ReferralPage(BaseModel):
    items: list[ReferralRead]
    next_cursor: str | None
