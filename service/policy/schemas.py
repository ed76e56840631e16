"""HTTP shapes of the policy endpoints (API.md "Policies")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from service.schemas import StrictInput

Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class PolicyFileRead(BaseModel):
    name: str
    sha256: str
    text: str


class PolicySetRead(BaseModel):
    version: str = Field(description="SHA-256 of the policy files in canonical order")
    files: list[PolicyFileRead]
    taxonomy: dict[str, Any]


class HypotheticalConsent(StrictInput):
    """A consent that does not exist: only the shape the decision needs."""

    recipients: Annotated[list[uuid.UUID], Field(max_length=100)]
    purposes: Annotated[list[Name], Field(max_length=20)]
    categories: Annotated[list[Name], Field(max_length=50)]
    fields: Annotated[list[Name], Field(max_length=200)] | None = None
    valid_from: AwareDatetime | None = None
    expires_at: AwareDatetime


class ExplainRequest(StrictInput):
    recipient_org_id: uuid.UUID
    purpose: Name
    legal_basis: Name
    categories: Annotated[list[Name], Field(min_length=1, max_length=50)]
    consent: HypotheticalConsent | None = None
    justification_given: bool = Field(
        default=False, description="Whether a justification would be given (emergency rule)"
    )


class PolicyRefRead(BaseModel):
    id: str
    reason: str
    source: str


class CategoryDecision(BaseModel):
    category: str
    decision: Literal["allow", "deny"]
    outlook: Literal["allowed", "needs_consent", "never"] = Field(
        description="allowed; needs_consent: denied now, but a consent naming this "
        "recipient, purpose and category would release it; never: not even such a consent would"
    )
    policies: list[PolicyRefRead]
    obligations: list[str]


class OrgRulesRead(BaseModel):
    org_id: uuid.UUID
    version: int
    sha256: str


class MissingSignatureRead(BaseModel):
    version: int
    org_id: uuid.UUID


class AgreementStandingRead(BaseModel):
    """One collaboration both organizations belong to, as it binds them
    (docs/agreements.md): the version in force is the last one both signed."""

    collaboration_id: uuid.UUID
    latest_version: int
    version_in_force: int | None = Field(
        description="The last version both organizations signed (null: none, no flows)"
    )
    missing_signatures: list[MissingSignatureRead] = Field(
        description="Signatures the latest version still needs to bind this pair"
    )


class ExplainResponse(BaseModel):
    policy_version: str
    org_rules: list[OrgRulesRead]
    decisions: list[CategoryDecision]
    agreements: list[AgreementStandingRead] = Field(default_factory=list)


class OrgPolicyUpdate(StrictInput):
    multiline = frozenset({"cedar"})  # free text may have line breaks
    cedar: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="Cedar forbid statements, each with @id and @reason annotations"
    )


class OrgPolicyRead(BaseModel):
    org_id: uuid.UUID
    version: int
    sha256: str
    created_at: datetime
    created_by: str
