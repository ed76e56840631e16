"""Response shapes of the Accord API as the clients return them (the fields the
contract names; the service may add more), and pages."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # What the directory said about the recipient when the referral was sent (it was
    # taken all the same): "recipient_not_accepting", "recipient_limited_hours".
    recipient_warnings: list[str]
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


# --- events and webhooks (the feed and an organization's webhook endpoints) ------------


class Event(TypedDict):
    """One event, as the feed lists it and as a webhook's body carries it. `data`
    holds identifiers, states, times, reason codes and organization ids only."""

    id: str  # a webhook's `webhook-id`
    seq: int  # its number in the organization's feed: 1, 2, 3, ...
    type: str  # e.g. "referral.accepted" (docs/notifications.md)
    timestamp: str
    object_type: str
    object_id: str
    data: JSON


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of the feed, oldest first; pass `next_after` back as `after`. When
    nothing is new, `items` is empty and `next_after` is the `after` you gave."""

    items: list[Event]
    next_after: int


class WebhookEndpoint(TypedDict):
    """A webhook endpoint of an organization (never its secret)."""

    id: str
    org_id: str
    url: str
    event_types: list[str]
    paused: bool
    failing_since: str | None  # a delivery exhausted its retries; cleared by a success
    previous_secret_until: str | None  # after a rotation: the old secret signs until then
    created_at: str
    created_by: str


@dataclass(frozen=True, slots=True)
class CreatedWebhook:
    """An endpoint with its signing secret (`whsec_...`), which the service shows only
    when the endpoint is created or its secret rotated: store it now. Kept out of
    repr so that logging the result does not log the secret."""

    endpoint: WebhookEndpoint
    secret: str = field(repr=False)


class WebhookAttempt(TypedDict):
    at: str
    status_code: int | None  # the receiver's HTTP status; None if it did not answer
    error: str | None  # an error code (timeout, refused, ...), never a body
    duration_ms: int


class WebhookDelivery(TypedDict):
    """One event's delivery to one endpoint: its state and its recent attempts."""

    id: str
    event_id: str  # the `webhook-id`
    event_type: str
    event_seq: int
    status: str  # pending, succeeded, failed, cancelled
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    history: list[WebhookAttempt]  # the most recent attempts, oldest first


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """Deliveries to one endpoint, newest event first; pass `next_before` back as
    `before` for older ones (None: there are none)."""

    items: list[WebhookDelivery]
    next_before: int | None
