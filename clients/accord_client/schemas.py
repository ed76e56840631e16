"""Response shapes of every `/v1` operation, generated from the service's OpenAPI
document by clients/tools/schemas.py: do not edit by hand (a test compares).

Each is a TypedDict: the JSON object as the service sends it (times as ISO 8601
strings, ids as strings), so results index like dicts and type-check by key.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class AccessLink(TypedDict):
    id: str
    token: str
    expires_at: str
    url: str
    code_expires_at: str


class AccessLinkRefusal(TypedDict):
    at: str
    link_id: str
    reason: str
    audit_seq: int


class AccessLinkRefusalPage(TypedDict):
    items: list[AccessLinkRefusal]
    next_cursor: str | None


class AgreementHistory(TypedDict):
    items: list[AgreementRead]


class AgreementRead(TypedDict):
    version: int
    flows: list[FlowRead]
    effective_from: str
    effective_to: str | None
    document_sha256: str
    created_at: str
    members: list[str] | None
    sha256: str | None
    previous_sha256: str | None
    signatures: list[SignatureRead]


class AgreementStandingRead(TypedDict):
    collaboration_id: str
    latest_version: int
    version_in_force: int | None
    missing_signatures: list[MissingSignatureRead]


class AllegedAbuserRead(TypedDict):
    subject_id: str
    person_ref: str
    recorded_at: str


class Availability(TypedDict):
    accepting_referrals: bool
    capacity: int | None
    hours: Literal["24/7", "business_hours", "extended_hours", "on_call"]
    languages: list[str]
    services: list[str]
    populations: list[str]
    updated_at: str | None


class CategoryDecision(TypedDict):
    category: str
    decision: Literal["allow", "deny"]
    outlook: Literal["allowed", "needs_consent", "never"]
    policies: list[PolicyRefRead]
    obligations: list[str]


class Cell(TypedDict):
    count: int | None
    suppressed: bool


class CheckpointRead(TypedDict):
    origin: str
    tree_size: int
    root_hash: str
    public_key: str
    verifier_key: str
    note: str


class CollaborationPage(TypedDict):
    items: list[CollaborationRead]
    next_cursor: str | None


class CollaborationRead(TypedDict):
    id: str
    name: str
    created_at: str
    agreement: AgreementRead
    members: list[MemberRead]


class ConsentList(TypedDict):
    items: list[ConsentRead]


class ConsentRead(TypedDict):
    id: str
    grant_id: str
    version: int
    supersedes: str | None
    subject_id: str
    owner_org_id: str
    recipients: list[str]
    purposes: list[str]
    categories: list[str]
    fields: list[str] | None
    valid_from: str
    expires_at: str
    method: Literal["written", "verbal", "electronic"]
    language: str
    evidence_sha256: str | None
    witness_role: Literal["caseworker", "supervisor", "advocate", "interpreter"] | None
    given_by: Literal["survivor", "parent_or_guardian", "legal_representative"]
    giver_ref: str | None
    recorded_by: str
    recorded_at: str
    revoked_at: str | None
    superseded: bool
    live: bool


class ConsistencyProofRead(TypedDict):
    tree_size: int
    proof: list[str]
    from_size: int


class DeliveryRead(TypedDict):
    envelope_header: dict[str, Any]
    released: list[ReleasedField]
    withheld: list[WithheldFieldRead]
    signature: str
    sender_key_id: str
    disclosure_seq: int


class DisclosureAccount(TypedDict):
    seq: int
    at: str
    recipient_org_id: str | None
    recipient_name: str | None
    categories: list[str]
    purpose: str | None
    legal_basis: str | None


class DisclosureAccounting(TypedDict):
    subject_id: str
    items: list[DisclosureAccount]


class Durations(TypedDict):
    name: Literal["sent_to_delivered", "sent_to_accepted"]
    title: str
    referrals: Cell
    median_hours: float | None
    p90_hours: float | None


class EntryPage(TypedDict):
    items: list[dict[str, Any]]
    next_after_seq: int | None


class EventPage(TypedDict):
    items: list[EventRead]
    next_after: int


class EventRead(TypedDict):
    id: str
    seq: int
    type: str
    timestamp: str
    object_type: str
    object_id: str
    data: dict[str, Any]


class ExplainResponse(TypedDict):
    policy_version: str
    org_rules: list[OrgRulesRead]
    decisions: list[CategoryDecision]
    agreements: list[AgreementStandingRead]


class FieldLabel(TypedDict):
    name: str
    category: str


class FlowRead(TypedDict):
    from_sector: Literal[
        "victim_services",
        "shelter",
        "law_enforcement",
        "prosecution",
        "legal_services",
        "healthcare",
        "child_welfare",
        "government",
        "advocacy",
        "faith_based",
        "research",
        "oversight",
    ]
    to_sector: Literal[
        "victim_services",
        "shelter",
        "law_enforcement",
        "prosecution",
        "legal_services",
        "healthcare",
        "child_welfare",
        "government",
        "advocacy",
        "faith_based",
        "research",
        "oversight",
    ]
    purposes: list[str]
    categories: list[str]


class InclusionProofRead(TypedDict):
    tree_size: int
    proof: list[str]
    seq: int
    leaf_hash: str


class KeyHistory(TypedDict):
    items: list[PublicKey]


class KeysRegistered(TypedDict):
    encryption_key_id: str
    signing_key_id: str


class MemberRead(TypedDict):
    org_id: str
    added_at: str


class MissingSignatureRead(TypedDict):
    version: int
    org_id: str


class ObligationList(TypedDict):
    items: list[ObligationRead]


class ObligationRead(TypedDict):
    id: str
    holder_org_id: str
    request_id: str
    kind: str
    created_at: str
    due_at: str
    overdue: bool
    done_at: str | None
    done_how: str | None


class OrgPolicyRead(TypedDict):
    org_id: str
    version: int
    sha256: str
    created_at: str
    created_by: str


class OrgRulesRead(TypedDict):
    org_id: str
    version: int
    sha256: str


class OrganizationKeys(TypedDict):
    encryption: PublicKey | None
    signing: PublicKey | None


class OrganizationPage(TypedDict):
    items: list[OrganizationRead]
    next_cursor: str | None


class OrganizationRead(TypedDict):
    id: str
    name: str
    sector: Literal[
        "victim_services",
        "shelter",
        "law_enforcement",
        "prosecution",
        "legal_services",
        "healthcare",
        "child_welfare",
        "government",
        "advocacy",
        "faith_based",
        "research",
        "oversight",
    ]
    jurisdiction: str | None
    availability: Availability
    keys: OrganizationKeys
    confidential: bool


class Period(TypedDict):
    label: str
    granularity: Literal["month", "quarter", "year"]
    start: str
    end: str


class PolicyFileRead(TypedDict):
    name: str
    sha256: str
    text: str


class PolicyRefRead(TypedDict):
    id: str
    reason: str
    source: str


class PolicySetRead(TypedDict):
    version: str
    files: list[PolicyFileRead]
    taxonomy: dict[str, Any]


class PreliminaryItem(TypedDict):
    category: str
    outcome: Literal["allowed", "needs_consent", "never"]
    policies: list[str]


class PrincipalPage(TypedDict):
    items: list[PrincipalRead]
    next_cursor: str | None


class PrincipalRead(TypedDict):
    subject: str
    active: bool
    first_seen_at: str | None
    last_seen_at: str | None
    last_token_id: str | None
    changed_at: str | None
    changed_by: str | None


class PublicKey(TypedDict):
    key_id: str
    kind: Literal["encryption", "signing"]
    public_key: str
    created_at: str
    retired_at: str | None


class RecordsRequestPage(TypedDict):
    items: list[RecordsRequestRead]
    next_cursor: str | None


class RecordsRequestRead(TypedDict):
    id: str
    requester_org_id: str
    holder_org_id: str
    subject_ref: str
    categories: list[str]
    purpose: str
    legal_basis: Literal["consent", "court_order", "subpoena", "mandated_report", "emergency"]
    legal_reference: str | None
    document_sha256: str | None
    justification: str
    preliminary: list[PreliminaryItem]
    policy_version: str
    status: str
    created_at: str
    responded_at: str | None
    response_note: str | None
    consent_id: str | None
    fields: list[FieldLabel]
    delivered_at: str | None


class ReferralPage(TypedDict):
    items: list[ReferralRead]
    next_cursor: str | None


class ReferralRead(TypedDict):
    id: str
    status: Literal["sent", "delivered", "accepted", "declined", "closed", "withdrawn", "expired"]
    sender_org_id: str
    recipient_org_id: str
    subject_id: str
    consent_id: str
    purpose: str
    services_requested: list[
        Literal[
            "emergency_shelter",
            "transitional_housing",
            "case_management",
            "crisis_hotline",
            "counseling",
            "medical_care",
            "mental_health",
            "substance_use_treatment",
            "legal_aid",
            "immigration_legal",
            "interpretation",
            "employment",
            "financial_assistance",
            "child_services",
            "victim_advocacy",
            "investigation",
            "prosecution",
        ]
    ]
    urgency: Literal["routine", "urgent", "emergency"]
    envelope_id: str
    fields: list[FieldLabel]
    created_at: str
    updated_at: str
    delivered_at: str | None
    decline_reason: (
        Literal["no_capacity", "not_eligible", "cannot_reach", "survivor_declined", "other"] | None
    )
    outcome: str | None
    shredded_at: str | None
    timeline: list[TimelineEvent]
    recipient_warnings: list[Literal["recipient_not_accepting", "recipient_limited_hours"]]


class ReleasedField(TypedDict):
    name: str
    category: str
    ciphertext: str
    sealed_key: str
    key_commitment: str


class Report(TypedDict):
    collaboration_id: str
    collaboration_name: str
    period: Period
    threshold: int
    granularity: Literal["month", "quarter", "year"]
    suppression: str
    tables: list[Table]
    durations: list[Durations]
    generated_at: str


class ReviewList(TypedDict):
    items: list[ReviewRead]


class ReviewRead(TypedDict):
    id: str
    holder_org_id: str
    request_id: str
    released_by: str
    created_at: str
    due_at: str
    overdue: bool
    closed_at: str | None
    closed_by: str | None
    finding: str | None
    survivor_notified: bool | None


class SignatureRead(TypedDict):
    version: int
    org_id: str
    key_id: str
    signature: str
    signed_at: str
    withdrawn_at: str | None


class SignaturesWithdrawn(TypedDict):
    items: list[SignatureRead]


class SubjectErasure(TypedDict):
    subject_id: str
    erased_at: str
    reason: Literal["survivor_request", "case_closed", "court_order", "safety"]


class SubjectRead(TypedDict):
    id: str
    owner_org_id: str
    is_minor: bool
    created_at: str


class SuspensionRead(TypedDict):
    id: str
    request_id: str
    document_sha256: str
    created_at: str
    until: str


class Table(TypedDict):
    name: str
    title: str
    rows: list[str]
    columns: list[str]
    cells: list[list[Cell]]
    row_totals: list[Cell] | None
    column_totals: list[Cell] | None
    total: Cell | None


class TimelineEvent(TypedDict):
    at: str
    event: str
    actor_org_id: str | None
    audit_seq: int | None


class TokenRevoked(TypedDict):
    jti: str
    revoked_at: str
    revoked_by: str


class WebhookAttemptRead(TypedDict):
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookDeliveryPage(TypedDict):
    items: list[WebhookDeliveryRead]
    next_before: int | None


class WebhookDeliveryRead(TypedDict):
    id: str
    event_id: str
    event_type: str
    event_seq: int
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    history: list[WebhookAttemptRead]


class WebhookEndpointPage(TypedDict):
    items: list[WebhookEndpointRead]
    next_cursor: str | None


class WebhookEndpointRead(TypedDict):
    id: str
    org_id: str
    url: str
    event_types: list[str]
    paused: bool
    failing_since: str | None
    previous_secret_until: str | None
    created_at: str
    created_by: str


class WebhookEndpointWithSecret(TypedDict):
    id: str
    org_id: str
    url: str
    event_types: list[str]
    paused: bool
    failing_since: str | None
    previous_secret_until: str | None
    created_at: str
    created_by: str
    secret: str


class WebhookSigningKey(TypedDict):
    public_key: str
    scheme: Literal["v1a"]
    algorithm: Literal["Ed25519"]


class WithheldFieldRead(TypedDict):
    name: str
    category: str
    ciphertext_sha256: str
    sealed_key_sha256: str
    key_commitment: str
    digest: str
    reasons: list[str]
    policies: list[str]


__all__ = [
    "AccessLink",
    "AccessLinkRefusal",
    "AccessLinkRefusalPage",
    "AgreementHistory",
    "AgreementRead",
    "AgreementStandingRead",
    "AllegedAbuserRead",
    "Availability",
    "CategoryDecision",
    "Cell",
    "CheckpointRead",
    "CollaborationPage",
    "CollaborationRead",
    "ConsentList",
    "ConsentRead",
    "ConsistencyProofRead",
    "DeliveryRead",
    "DisclosureAccount",
    "DisclosureAccounting",
    "Durations",
    "EntryPage",
    "EventPage",
    "EventRead",
    "ExplainResponse",
    "FieldLabel",
    "FlowRead",
    "InclusionProofRead",
    "KeyHistory",
    "KeysRegistered",
    "MemberRead",
    "MissingSignatureRead",
    "ObligationList",
    "ObligationRead",
    "OrgPolicyRead",
    "OrgRulesRead",
    "OrganizationKeys",
    "OrganizationPage",
    "OrganizationRead",
    "Period",
    "PolicyFileRead",
    "PolicyRefRead",
    "PolicySetRead",
    "PreliminaryItem",
    "PrincipalPage",
    "PrincipalRead",
    "PublicKey",
    "RecordsRequestPage",
    "RecordsRequestRead",
    "ReferralPage",
    "ReferralRead",
    "ReleasedField",
    "Report",
    "ReviewList",
    "ReviewRead",
    "SignatureRead",
    "SignaturesWithdrawn",
    "SubjectErasure",
    "SubjectRead",
    "SuspensionRead",
    "Table",
    "TimelineEvent",
    "TokenRevoked",
    "WebhookAttemptRead",
    "WebhookDeliveryPage",
    "WebhookDeliveryRead",
    "WebhookEndpointPage",
    "WebhookEndpointRead",
    "WebhookEndpointWithSecret",
    "WebhookSigningKey",
    "WithheldFieldRead",
]
