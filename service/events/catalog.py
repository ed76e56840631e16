"""Every event type, who receives it, and what its `data` holds (docs/notifications.md
is written from the same list). An event names identifiers, states, times, reason
codes and organization ids only: never a field value, ciphertext or free text, and
it goes only to organizations that may already see its object."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    referral_sent = "referral.sent"
    referral_delivered = "referral.delivered"
    referral_accepted = "referral.accepted"
    referral_declined = "referral.declined"
    referral_closed = "referral.closed"
    referral_withdrawn = "referral.withdrawn"
    referral_expired = "referral.expired"
    consent_withdrawn = "consent.withdrawn"
    consent_review_needed = "consent.review_needed"
    records_request_created = "records_request.created"
    records_request_responded = "records_request.responded"
    records_request_expired = "records_request.expired"
    obligation_due = "obligation.due"
    obligation_overdue = "obligation.overdue"
    review_due = "review.due"
    review_overdue = "review.overdue"
    member_removed = "member.removed"
    agreement_proposed = "agreement.proposed"
    agreement_signed = "agreement.signed"
    agreement_signature_withdrawn = "agreement.signature_withdrawn"
    keys_rotated = "keys.rotated"
    subject_erased = "subject.erased"
    webhook_test = "webhook.test"


# (who receives it, what `data` holds): the reference for docs and tests.
CATALOG: dict[EventType, tuple[str, str]] = {
    EventType.referral_sent: (
        "the referral's sender and recipient",
        "referral_id, status, sender_org, recipient_org, urgency",
    ),
    EventType.referral_delivered: (
        "the referral's sender and recipient",
        "referral_id, status, sender_org, recipient_org",
    ),
    EventType.referral_accepted: (
        "the referral's sender and recipient",
        "referral_id, status, sender_org, recipient_org",
    ),
    EventType.referral_declined: (
        "the referral's sender and recipient",
        "referral_id, status, sender_org, recipient_org, reason (a decline reason code)",
    ),
    EventType.referral_closed: (
        "the referral's sender and recipient",
        "referral_id, status, sender_org, recipient_org",
    ),
    EventType.referral_withdrawn: (
        "the referral's sender and recipient",
        "referral_id, status, sender_org, recipient_org",
    ),
    EventType.referral_expired: (
        "the referral's sender and recipient",
        "referral_id, status (expired), sender_org, recipient_org",
    ),
    EventType.consent_withdrawn: (
        "every organization that received fields under the grant (and the owner)",
        "consent_id, grant_id, owner_org, withdrawn_at, referral_ids and request_ids that "
        "organization holds under it, action: destroy_copies",
    ),
    EventType.consent_review_needed: (
        "the grant's owner",
        "consent_id, grant_id, collaboration_id, agreement_version",
    ),
    EventType.records_request_created: (
        "the requester and the holder",
        "request_id, status, requester_org, holder_org, legal_basis",
    ),
    EventType.records_request_responded: (
        "the requester and the holder",
        "request_id, status (released or refused), requester_org, holder_org, legal_basis",
    ),
    EventType.records_request_expired: (
        "the requester and the holder",
        "request_id, status (expired), requester_org, holder_org, legal_basis",
    ),
    EventType.obligation_due: ("the holder", "obligation_id, request_id, kind, due_at"),
    EventType.obligation_overdue: ("the holder", "obligation_id, request_id, kind, due_at"),
    EventType.review_due: ("the holder", "review_id, request_id, due_at"),
    EventType.review_overdue: ("the holder", "review_id, request_id, due_at"),
    EventType.member_removed: (
        "the removed organization and the remaining members",
        "collaboration_id, org_id",
    ),
    EventType.agreement_proposed: (
        "the members the version is proposed to",
        "collaboration_id, agreement_version, agreement_sha256",
    ),
    EventType.agreement_signed: (
        "the collaboration's members",
        "collaboration_id, agreement_version, org_id, key_id",
    ),
    EventType.agreement_signature_withdrawn: (
        "the collaboration's members (every earlier recipient under it among them)",
        "collaboration_id, org_id, agreement_versions, withdrawn_at",
    ),
    EventType.keys_rotated: (
        "every active organization (any principal may read the directory's keys)",
        "org_id, encryption_key_id, signing_key_id",
    ),
    EventType.webhook_test: ("the endpoint's organization (one endpoint)", "endpoint_id"),
    EventType.subject_erased: (
        "every organization that received fields about the subject",
        "subject_id, owner_org, erased_at, referral_ids and request_ids that organization "
        "holds about it, action: destroy_copies",
    ),
}
