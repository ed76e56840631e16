"""What the sync and async clients share: the retry rule and pure request building
(one place, so the twins cannot drift), and the checks on a received referral.
Nothing here performs I/O."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from accord_client._exceptions import AccordAPIError, RateLimitedError, ServiceUnavailableError
from accord_client._models import JSON, Organization, Page, Referral, Urgency
from accord_client.envelope import OpenedEnvelope, open_delivery
from accord_client.envelope_errors import EnvelopeMalformedError
from accord_client.envelope_errors import Problem as EnvelopeProblem
from accord_client.envelope_format import b64decode_strict
from accord_client.keys import OrganizationKeys
from accord_client.schemas import DeliveryRead, WithheldFieldRead

# --- retries -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff for idempotent calls only (GET, PUT, and POSTs that carry an
    Idempotency-Key), on connection errors, 429 and 503. Retry-After is honoured up
    to `retry_after_max` seconds. `attempts=1` turns retries off."""

    attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.25
    retry_after_max: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.backoff_initial, self.backoff_max, self.jitter, self.retry_after_max) < 0:
            raise ValueError("backoff times must not be negative")


# The request never reached the service: safe to send again whatever the method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def is_retryable(spec: RequestSpec, exc: BaseException) -> bool:
    """Whether a failed idempotent call may be sent again.

    429 and 503 promise that nothing was done. Any other transport error (a read
    timeout included, after which the request may have been committed) is retried
    for GET and PUT and for creates that carry an Idempotency-Key: the service
    returns the first result for a repeated key (subjects, consents, referrals), so
    a resend can never make a second object. Other POSTs are never resent.
    """
    if isinstance(exc, (RateLimitedError, ServiceUnavailableError)):
        return True
    if spec.idempotent:
        return isinstance(exc, httpx.TransportError)
    return isinstance(exc, _NOT_SENT)


def backoff_seconds(
    policy: RetryPolicy, attempt: int, exc: BaseException | None, jitter: float
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based); `jitter` in [0, 1)."""
    if isinstance(exc, AccordAPIError) and exc.retry_after is not None:
        return min(exc.retry_after, policy.retry_after_max)
    exponential = policy.backoff_initial * math.pow(2, attempt - 1)
    return min(exponential, policy.backoff_max) + policy.jitter * jitter


# --- request building --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One HTTP call, built once per client call so every retry repeats it exactly
    (same Idempotency-Key). `json` is kept out of repr: it may hold survivor data."""

    method: str
    path: str
    params: Mapping[str, str | int] = field(default_factory=dict)
    json: Any = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        if self.method in {"GET", "PUT", "HEAD", "DELETE"}:
            return True
        return "Idempotency-Key" in self.headers


def _text(value: str | uuid.UUID | datetime) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("times must be timezone-aware")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def iso_time(value: datetime | str) -> str:
    """A time for a request body: ISO 8601 in UTC with a `Z` (aware datetimes only)."""
    return _text(value)


def query(**values: str | int | bool | uuid.UUID | datetime | None) -> dict[str, str | int]:
    """Query parameters without the unset ones; booleans as the service parses them."""
    out: dict[str, str | int] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, int):
            out[key] = value
        else:
            out[key] = _text(value)
    return out


def create(path: str, body: Any, idempotency_key: str | None) -> RequestSpec:
    """A create: carries an Idempotency-Key (a new uuid4 unless given) so it may be retried."""
    key = idempotency_key or str(uuid.uuid4())
    return RequestSpec("POST", path, json=body, headers={"Idempotency-Key": key})


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsentDraft:
    """The body of a consent grant (POST /v1/subjects/{id}/consents). `giver_ref` and
    `evidence_sha256` are lowercase hex SHA-256 values, never the evidence itself."""

    recipients: tuple[str, ...]
    purposes: tuple[str, ...]
    categories: tuple[str, ...]
    expires_at: datetime | str
    method: Literal["written", "verbal", "electronic"]
    language: str
    fields: tuple[str, ...] | None = None
    valid_from: datetime | str | None = None
    evidence_sha256: str | None = None
    witness_role: str | None = None
    given_by: str | None = None
    giver_ref: str | None = field(default=None, repr=False)

    def to_json(self, *, supersedes: str | None = None) -> JSON:
        body: JSON = {
            "recipients": [str(r) for r in self.recipients],
            "purposes": list(self.purposes),
            "categories": list(self.categories),
            "expires_at": _text(self.expires_at),
            "method": self.method,
            "language": self.language,
        }
        optional: dict[str, Any] = {
            "fields": list(self.fields) if self.fields is not None else None,
            "valid_from": _text(self.valid_from) if self.valid_from is not None else None,
            "evidence_sha256": self.evidence_sha256,
            "witness_role": self.witness_role,
            "given_by": self.given_by,
            "giver_ref": self.giver_ref,
            "supersedes": supersedes,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return body


def referral_body(
    *,
    subject_id: str,
    recipient_org_id: str,
    consent_id: str,
    purpose: str,
    envelope: Mapping[str, object],
    services_requested: Iterable[str],
    urgency: Urgency,
) -> JSON:
    return {
        "subject_id": str(subject_id),
        "recipient_org_id": str(recipient_org_id),
        "consent_id": str(consent_id),
        "purpose": purpose,
        "services_requested": list(services_requested),
        "urgency": urgency,
        "envelope": dict(envelope),
    }


def agreement_body(
    *,
    flows: Iterable[Mapping[str, Any]],
    effective_from: datetime | str,
    document_sha256: str,
    effective_to: datetime | str | None = None,
) -> dict[str, Any]:
    """An agreement (`AgreementInput`): flows `{from_sector, to_sector, purposes,
    categories}`, when it takes effect, the SHA-256 of the signed document."""
    body: dict[str, Any] = {
        "flows": [dict(flow) for flow in flows],
        "effective_from": iso_time(effective_from),
        "document_sha256": document_sha256,
    }
    if effective_to is not None:
        body["effective_to"] = iso_time(effective_to)
    return body


def explain_body(
    *,
    recipient_org_id: str,
    purpose: str,
    legal_basis: str,
    categories: Iterable[str],
    consent: Mapping[str, Any] | None,
    justification_given: bool,
) -> JSON:
    body: JSON = {
        "recipient_org_id": str(recipient_org_id),
        "purpose": purpose,
        "legal_basis": legal_basis,
        "categories": list(categories),
        "justification_given": justification_given,
    }
    if consent is not None:
        body["consent"] = dict(consent)
    return body


def page_of(body: JSON) -> Page[Any]:
    return Page(items=list(body["items"]), next_cursor=body.get("next_cursor"))


def response_body(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer; None for 204 No Content (e.g. a DELETE)."""
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


# --- referrals: the directory is the only source of keys --------------------------------


class DirectoryKeyError(Exception):
    """The directory has no usable key for this purpose (no data is sent or opened)."""


@dataclass(frozen=True, slots=True)
class ReceivedReferral:
    """What `receive_referral` returns: the referral's metadata, the verified and
    decrypted envelope (values kept out of repr), each withheld field as the service
    sent it (name, category, digests, and the unsigned `reasons` and deciding
    `policies`), and the audit entry recording the disclosure."""

    referral: Referral
    opened: OpenedEnvelope
    withheld: tuple[WithheldFieldRead, ...]
    disclosure_seq: int


def recipient_encryption_key(org: Organization) -> bytes:
    """The recipient's current X25519 key as the directory publishes it."""
    current = org.get("keys", {}).get("encryption")
    if not current:
        raise DirectoryKeyError("the recipient organization has no registered encryption key")
    try:
        return b64decode_strict(current["public_key"])
    except (KeyError, ValueError):
        raise DirectoryKeyError("the directory's encryption key is not valid base64") from None


def signing_key_from_history(history: Mapping[str, Any], key_id: str) -> bytes:
    """The Ed25519 key with this id in GET /v1/organizations/{id}/keys (current or
    retired: an envelope signed before a rotation still verifies)."""
    for item in history.get("items", []):
        if item.get("kind") == "signing" and item.get("key_id") == key_id:
            try:
                return b64decode_strict(str(item["public_key"]))
            except ValueError:
                break
    raise DirectoryKeyError("the sender's signing key id is not in the directory")


def delivery_key_ids(delivery: JSON) -> tuple[str, str]:
    """(sender_key_id, recipient_key_id) named by a delivery; open_delivery then checks
    both against the signed header and the keys actually used."""
    header = delivery.get("envelope_header")
    sender_key_id = delivery.get("sender_key_id")
    if not isinstance(header, dict) or not isinstance(sender_key_id, str):
        raise EnvelopeMalformedError([EnvelopeProblem("delivery", "structure", "not a delivery")])
    recipient_key_id = header.get("recipient_key_id")
    if not isinstance(recipient_key_id, str):
        raise EnvelopeMalformedError(
            [EnvelopeProblem("delivery.envelope_header", "structure", "no recipient_key_id")]
        )
    return sender_key_id, recipient_key_id


def open_received(
    referral: Referral, delivery: DeliveryRead, keys: OrganizationKeys, sender_key: bytes
) -> ReceivedReferral:
    """Verify and decrypt a delivery against the referral's own metadata: the sender
    organization, subject, purpose and consent the service recorded must be the ones
    the sender signed."""
    _, recipient_key_id = delivery_key_ids(dict(delivery))
    opened = open_delivery(
        delivery,
        recipient_private_key=keys.encryption_private_key(recipient_key_id),
        sender_signing_key=sender_key,
        expected_sender_org=str(referral["sender_org_id"]),
        expected_recipient_org=keys.org_id,
        expected_context={
            "subject_id": str(referral["subject_id"]),
            "purpose": referral["purpose"],
            "consent_id": str(referral["consent_id"]),
        },
    )
    return ReceivedReferral(
        referral=referral,
        opened=opened,
        withheld=tuple(delivery.get("withheld", [])),
        disclosure_seq=int(delivery.get("disclosure_seq", -1)),
    )
