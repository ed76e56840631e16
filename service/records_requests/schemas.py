"""Request and response bodies of the records-request endpoints (API.md "Records
requests"), obligations and reviews."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from service.records_requests.models import LegalBasis
from service.schemas import StrictInput

SHA256_HEX = r"^[0-9a-f]{64}$"
CODE = r"^[a-z][a-z0-9_]{0,31}$"


class RecordsRequestCreate(StrictInput):
    multiline = frozenset({"justification"})  # free text may have line breaks
    holder_org_id: uuid.UUID
    subject_ref: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description="A reference the holder shared with you (a referral id, its case "
        "number); never a name",
    )
    categories: list[str] = Field(min_length=1, max_length=30)
    purpose: str = Field(max_length=64)
    legal_basis: LegalBasis
    legal_reference: str | None = Field(
        default=None,
        max_length=500,
        description="Court order or subpoena number, or the reporting statute; "
        "required for court_order, subpoena and mandated_report",
    )
    document_sha256: str | None = Field(
        default=None,
        pattern=SHA256_HEX,
        description="SHA-256 of the order or subpoena; required for court_order and subpoena",
    )
    justification: str = Field(min_length=1, max_length=4000)


class Decision(StrEnum):
    release = "release"
    refuse = "refuse"


class RespondRequest(StrictInput):
    multiline = frozenset({"note"})  # free text may have line breaks
    decision: Decision
    consent_id: uuid.UUID | None = Field(
        default=None,
        description="The survivor's consent: required when the basis is consent; on "
        "another basis it may cover categories the basis alone does not release",
    )
    envelope: dict[str, Any] | None = Field(
        default=None, description="The answer sealed to the requester (docs/envelope.md)"
    )
    note: str | None = Field(default=None, max_length=4000)


class PreliminaryItem(BaseModel):
    category: str
    outcome: Literal["allowed", "needs_consent", "never"]
    policies: list[str]


class FieldLabel(BaseModel):
    name: str
    category: str


class RecordsRequestRead(BaseModel):
    id: uuid.UUID
    requester_org_id: uuid.UUID
    holder_org_id: uuid.UUID
    subject_ref: str
    categories: list[str]
    purpose: str
    legal_basis: LegalBasis
    legal_reference: str | None
    document_sha256: str | None
    justification: str
    preliminary: list[PreliminaryItem]
    policy_version: str
    status: str
    created_at: datetime
    responded_at: datetime | None
    response_note: str | None
    consent_id: uuid.UUID | None
    fields: list[FieldLabel]
    delivered_at: datetime | None


class RecordsRequestPage(BaseModel):
    items: list[RecordsRequestRead]
    next_cursor: str | None


class DoneHow(StrEnum):
    in_person = "in_person"
    phone = "phone"
    letter = "letter"
    secure_message = "secure_message"
    not_possible = "not_possible"


class ObligationDone(StrictInput):
    how: DoneHow
    done_at: AwareDatetime


class ObligationRead(BaseModel):
    id: uuid.UUID
    holder_org_id: uuid.UUID
    request_id: uuid.UUID
    kind: str
    created_at: datetime
    due_at: datetime
    overdue: bool
    done_at: datetime | None
    done_how: str | None


class ObligationList(BaseModel):
    items: list[ObligationRead]


class Finding(StrEnum):
    justified = "justified"
    not_justified = "not_justified"


class ReviewClose(StrictInput):
    multiline = frozenset({"reason_not_notified"})  # free text may have line breaks

    finding: Finding
    survivor_notified: bool
    reason_not_notified: str | None = Field(
        default=None,
        max_length=2000,
        description="Required when the survivor is not told (telling them would endanger them)",
    )


class ReviewRead(BaseModel):
    id: uuid.UUID
    holder_org_id: uuid.UUID
    request_id: uuid.UUID
    released_by: str
    created_at: datetime
    due_at: datetime
    overdue: bool
    closed_at: datetime | None
    closed_by: str | None
    finding: str | None
    survivor_notified: bool | None


class ReviewList(BaseModel):
    items: list[ReviewRead]


class SuspensionCreate(StrictInput):
    document_sha256: str = Field(
        pattern=SHA256_HEX, description="SHA-256 of the agency's written request"
    )
    until: AwareDatetime = Field(description="The suspension ends by itself at this time")


class SuspensionRead(BaseModel):
    id: uuid.UUID
    request_id: uuid.UUID
    document_sha256: str
    created_at: datetime
    until: datetime
