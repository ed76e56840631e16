"""Request and response models for collaborations and their agreements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from service.schemas import StrictInput
from service.sectors import Sector

Sha256Hex = Annotated[
    str, StringConstraints(min_length=64, max_length=64, pattern=r"^[0-9a-f]{64}$")
]
Token = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Flow(StrictInput):
    from_sector: Sector
    to_sector: Sector
    purposes: Annotated[list[Token], Field(max_length=50)]
    categories: Annotated[list[Token], Field(max_length=100)]


class AgreementInput(StrictInput):
    flows: Annotated[list[Flow], Field(min_length=1, max_length=200)]
    effective_from: AwareDatetime
    effective_to: AwareDatetime | None = None
    document_sha256: Sha256Hex = Field(
        description="SHA-256 (lowercase hex) of the signed agreement document"
    )


class CollaborationCreate(StrictInput):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    agreement: AgreementInput
    members: Annotated[list[uuid.UUID], Field(max_length=200)] = Field(
        default_factory=list,
        description="The first member organizations: version 1 is proposed to them",
    )


class MemberAdd(StrictInput):
    org_id: uuid.UUID


class FlowRead(BaseModel):
    from_sector: Sector
    to_sector: Sector
    purposes: list[str]
    categories: list[str]


class SignatureRead(BaseModel):
    version: int
    org_id: uuid.UUID
    key_id: str
    signature: str = Field(description="Ed25519 signature, standard base64")
    signed_at: datetime
    withdrawn_at: datetime | None


class AgreementRead(BaseModel):
    version: int
    flows: list[FlowRead]
    effective_from: datetime
    effective_to: datetime | None
    document_sha256: str
    created_at: datetime
    members: list[uuid.UUID] | None = Field(
        default=None,
        description="The members it was proposed to (null: predates signatures, never binds)",
    )
    sha256: str | None = Field(
        default=None, description="SHA-256 of the canonical signed bytes (docs/agreements.md)"
    )
    previous_sha256: str | None = None
    signatures: list[SignatureRead] = Field(default_factory=list)


class SignatureInput(StrictInput):
    version: Annotated[int, Field(ge=1, le=2**31 - 1)] = Field(
        description="The agreement version signed"
    )
    key_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="Ed25519 over the version's canonical bytes, standard base64"
    )


class SignaturesWithdrawn(BaseModel):
    items: list[SignatureRead]


class MemberRead(BaseModel):
    org_id: uuid.UUID
    added_at: datetime


class CollaborationRead(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    agreement: AgreementRead
    members: list[MemberRead]


class CollaborationPage(BaseModel):
    items: list[CollaborationRead]
    next_cursor: str | None


class AgreementHistory(BaseModel):
    items: list[AgreementRead]
