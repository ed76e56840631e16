"""Subjects carry no identifying data: only a random id, the owner and a minor flag."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from service.schemas import StrictInput


class SubjectCreate(StrictInput):
    is_minor: bool = False


class ErasureReason(StrEnum):
    """Why a subject was erased (docs/erasure.md): a code, never free text."""

    survivor_request = "survivor_request"
    case_closed = "case_closed"
    court_order = "court_order"
    safety = "safety"


class SubjectErase(StrictInput):
    reason: ErasureReason


class SubjectErasure(BaseModel):
    """The erasure of a subject: the same answer on every call."""

    subject_id: uuid.UUID
    erased_at: datetime
    reason: ErasureReason


class SubjectRead(BaseModel):
    id: uuid.UUID
    owner_org_id: uuid.UUID
    is_minor: bool
    created_at: datetime


class DisclosureAccount(BaseModel):
    """One disclosure about the subject, in plain terms: who received which
    categories, when, for what and on what basis. Never the values."""

    seq: int = Field(description="The audit log entry that records it")
    at: datetime
    recipient_org_id: uuid.UUID | None
    recipient_name: str | None
    categories: list[str]
    purpose: str | None
    legal_basis: str | None


class DisclosureAccounting(BaseModel):
    subject_id: uuid.UUID
    items: list[DisclosureAccount]


class AccessLinkCreate(StrictInput):
    lifetime_seconds: int = Field(default=3600, description="60 s up to the configured cap")


class AccessLink(BaseModel):
    id: uuid.UUID = Field(description="The link's id: DELETE /v1/access-links/{id} ends it")
    token: str = Field(description="Bearer token for the survivor endpoints of the API")
    expires_at: datetime
    url: str = Field(
        description=(
            "The link to hand to the survivor: /s/{code}, absolute when the service's "
            "public address is configured. The code works once, until code_expires_at"
        )
    )
    code_expires_at: datetime


class AccessLinkRefusal(BaseModel):
    """A refused use of one of the subject's access links (docs/survivor-pages.md):
    a reason code only, never anything the refused request carried."""

    at: datetime
    link_id: uuid.UUID
    reason: str = Field(
        description=(
            "code_used, expired, revoked, staff_endpoint (its token on an endpoint for "
            "staff) or other_record (a record that is not the survivor's, or none)"
        )
    )
    audit_seq: int


class AccessLinkRefusalPage(BaseModel):
    items: list[AccessLinkRefusal]
    next_cursor: str | None
