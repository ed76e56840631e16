"""Response shapes of the Accord API as the clients return them (the fields the
contract names; the service may add more), and pages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypedDict, TypeVar

JSON = dict[str, Any]
T = TypeVar("T")
Urgency = Literal["routine", "urgent", "emergency"]
DeclineReason = Literal["no_capacity", "not_eligible", "cannot_reach", "survivor_declined", "other"]
Box = Literal["sent", "received"]


# --- response shapes (the fields the contract names; the service may add more) ---------


class PublicKey(TypedDict):
    key_id: str
    kind: Literal["encryption", "signing"]
    public_key: str
    created_at: str
    retired_at: str | None


class Organization(TypedDict):
    id: str
    name: str
    sector: str
    jurisdiction: str | None
    availability: JSON
    keys: dict[str, PublicKey | None]


class KeysRegistered(TypedDict):
    encryption_key_id: str
    signing_key_id: str


class Subject(TypedDict):
    id: str
    owner_org_id: str
    is_minor: bool
    created_at: str


class Consent(TypedDict):
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
    method: str
    language: str
    evidence_sha256: str | None
    witness_role: str | None
    given_by: str
    giver_ref: str | None
    recorded_by: str
    recorded_at: str
    revoked_at: str | None
    superseded: bool
    live: bool


class Referral(TypedDict):
    id: str
    status: str
    sender_org_id: str
    recipient_org_id: str
    subject_id: str
    consent_id: str
    purpose: str
    services_requested: list[str]
    urgency: Urgency
    envelope_id: str
    fields: list[dict[str, str]]
    timeline: list[JSON]
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list endpoint; pass `next_cursor` back as `cursor` for the next."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of audit entries; pass `next_after_seq` back as `after_seq`."""

    items: list[JSON]
    next_after_seq: int | None
