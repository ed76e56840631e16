"""HTTP shapes of consent grants (API.md "Subjects and consent")."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from service.organizations.schemas import Bcp47
from service.schemas import StrictInput

Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Method(StrEnum):
    written = "written"
    verbal = "verbal"
    electronic = "electronic"


class GivenBy(StrEnum):
    survivor = "survivor"
    parent_or_guardian = "parent_or_guardian"
    legal_representative = "legal_representative"


class WitnessRole(StrEnum):
    caseworker = "caseworker"
    supervisor = "supervisor"
    advocate = "advocate"
    interpreter = "interpreter"


class ConsentCreate(StrictInput):
    recipients: Annotated[list[uuid.UUID], Field(max_length=100)]
    purposes: Annotated[list[Name], Field(max_length=20)]
    categories: Annotated[list[Name], Field(max_length=50)]
    fields: Annotated[list[Name], Field(max_length=200)] | None = None
    valid_from: AwareDatetime | None = None
    expires_at: AwareDatetime
    method: Method
    language: Bcp47
    evidence_sha256: Sha256Hex | None = None
    witness_role: WitnessRole | None = None
    given_by: GivenBy = GivenBy.survivor
    giver_ref: Sha256Hex | None = Field(
        default=None,
        description="Opaque reference to the person who gave consent (lowercase hex of a "
        "keyed SHA-256 the organization computes and keeps the key of); required unless "
        "given_by is survivor. Refused if recorded as the subject's alleged abuser.",
    )
    supersedes: uuid.UUID | None = Field(
        default=None, description="Amend: the id of the current version this one replaces"
    )


class RevokeRequest(StrictInput):
    multiline = frozenset({"reason"})  # free text may have line breaks
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class ConsentRead(BaseModel):
    id: uuid.UUID
    grant_id: uuid.UUID
    version: int
    supersedes: uuid.UUID | None
    subject_id: uuid.UUID
    owner_org_id: uuid.UUID
    recipients: list[uuid.UUID]
    purposes: list[str]
    categories: list[str]
    fields: list[str] | None
    valid_from: datetime
    expires_at: datetime
    method: Method
    language: str
    evidence_sha256: str | None
    witness_role: WitnessRole | None
    given_by: GivenBy
    giver_ref: str | None
    recorded_by: str
    recorded_at: datetime
    revoked_at: datetime | None
    superseded: bool
    live: bool = Field(description="Usable for a release right now (time, revocation, version)")


class ConsentList(BaseModel):
    items: list[ConsentRead]


class AllegedAbuserCreate(StrictInput):
    person_ref: Sha256Hex = Field(
        description="The same opaque reference a grant's giver_ref would carry for this person"
    )


class AllegedAbuserRead(BaseModel):
    subject_id: uuid.UUID
    person_ref: str
    recorded_at: datetime
