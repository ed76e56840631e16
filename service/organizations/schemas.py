"""Request and response models for organizations and the directory."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from service.schemas import StrictInput
from service.sectors import Sector

Bcp47 = Annotated[
    str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8}){0,6}$")
]
Base64Key = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Hours = Literal["24/7", "business_hours", "extended_hours", "on_call"]


class Service(StrEnum):
    emergency_shelter = "emergency_shelter"
    transitional_housing = "transitional_housing"
    case_management = "case_management"
    crisis_hotline = "crisis_hotline"
    counseling = "counseling"
    medical_care = "medical_care"
    mental_health = "mental_health"
    substance_use_treatment = "substance_use_treatment"
    legal_aid = "legal_aid"
    immigration_legal = "immigration_legal"
    interpretation = "interpretation"
    employment = "employment"
    financial_assistance = "financial_assistance"
    child_services = "child_services"
    victim_advocacy = "victim_advocacy"
    investigation = "investigation"
    prosecution = "prosecution"


class Population(StrEnum):
    adults = "adults"
    minors = "minors"
    women = "women"
    men = "men"
    lgbtq = "lgbtq"
    families = "families"
    foreign_nationals = "foreign_nationals"
    labor_trafficking = "labor_trafficking"
    sex_trafficking = "sex_trafficking"


class OrganizationCreate(StrictInput):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=False)]
    sector: Sector
    jurisdiction: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None


class AvailabilityUpdate(StrictInput):
    accepting_referrals: bool
    capacity: Annotated[int, Field(ge=0, le=100_000)] | None = None
    hours: Hours
    languages: Annotated[list[Bcp47], Field(max_length=50)]
    services: Annotated[list[Service], Field(max_length=50)]
    populations: Annotated[list[Population], Field(max_length=20)]


class KeysUpdate(StrictInput):
    encryption_public_key: Base64Key = Field(
        description="X25519 public key, standard base64 of 32 bytes"
    )
    signing_public_key: Base64Key = Field(
        description="Ed25519 public key, standard base64 of 32 bytes"
    )


class Availability(BaseModel):
    accepting_referrals: bool
    capacity: int | None
    hours: Hours
    languages: list[str]
    services: list[str]
    populations: list[str]
    updated_at: datetime | None


class PublicKey(BaseModel):
    key_id: str
    kind: Literal["encryption", "signing"]
    public_key: str = Field(description="standard base64")
    created_at: datetime
    retired_at: datetime | None


class OrganizationKeys(BaseModel):
    encryption: PublicKey | None
    signing: PublicKey | None


class OrganizationRead(BaseModel):
    """Directory entry. Deliberately no address, coordinates or staff names."""

    id: uuid.UUID
    name: str
    sector: Sector
    jurisdiction: str | None
    availability: Availability
    keys: OrganizationKeys
    confidential: bool = Field(
        default=False,
        description="Named only to members of its collaborations and to oversight",
    )


class ConfidentialityUpdate(StrictInput):
    confidential: bool


class OrganizationPage(BaseModel):
    items: list[OrganizationRead]
    next_cursor: str | None


class KeyHistory(BaseModel):
    items: list[PublicKey]


class KeysRegistered(BaseModel):
    encryption_key_id: str
    signing_key_id: str


TokenSubject = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class PrincipalChange(StrictInput):
    """Deactivate or reactivate a principal by its token subject (`sub`)."""

    subject: TokenSubject


class TokenRevoke(StrictInput):
    """Revoke one staff token by its `jti` (a principal's `last_token_id`, or the
    id the token's holder reads from it)."""

    jti: TokenSubject


class PrincipalRead(BaseModel):
    subject: str
    active: bool
    first_seen_at: datetime | None = Field(description="None if never seen")
    last_seen_at: datetime | None = Field(
        description="The last request that succeeded, up to a minute early; None if never seen"
    )
    last_token_id: str | None = Field(description="The `jti` of the token last seen")
    changed_at: datetime | None = Field(description="When an admin last (de)activated it")
    changed_by: str | None


class PrincipalPage(BaseModel):
    items: list[PrincipalRead]
    next_cursor: str | None


class TokenRevoked(BaseModel):
    jti: str
    revoked_at: datetime
    revoked_by: str
