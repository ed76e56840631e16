"""Pure helpers of the records-request methods (both clients): request bodies and
opening an answer against the request's own metadata. Nothing here performs I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from accord_client._protocol import delivery_key_ids, iso_time
from accord_client.envelope import OpenedEnvelope, open_delivery
from accord_client.keys import OrganizationKeys
from accord_client.schemas import DeliveryRead, RecordsRequestRead, WithheldFieldRead

LegalBasis = Literal["consent", "court_order", "subpoena", "mandated_report", "emergency"]
RecordsBox = Literal["made", "received"]
DoneHow = Literal["in_person", "phone", "letter", "secure_message", "not_possible"]
Finding = Literal["justified", "not_justified"]


def records_request_body(
    *,
    holder_org_id: str,
    subject_ref: str,
    categories: Iterable[str],
    purpose: str,
    legal_basis: LegalBasis,
    justification: str,
    legal_reference: str | None,
    document_sha256: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "holder_org_id": holder_org_id,
        "subject_ref": subject_ref,
        "categories": list(categories),
        "purpose": purpose,
        "legal_basis": legal_basis,
        "justification": justification,
    }
    if legal_reference is not None:
        body["legal_reference"] = legal_reference
    if document_sha256 is not None:
        body["document_sha256"] = document_sha256
    return body


def review_close_body(
    finding: Finding, survivor_notified: bool, reason_not_notified: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"finding": finding, "survivor_notified": survivor_notified}
    if reason_not_notified is not None:
        body["reason_not_notified"] = reason_not_notified
    return body


def obligation_done_body(how: DoneHow, done_at: datetime | str) -> dict[str, Any]:
    return {"how": how, "done_at": iso_time(done_at)}


@dataclass(frozen=True, slots=True)
class ReceivedAnswer:
    """What `receive_records_answer` returns: the request, the verified and
    decrypted answer (values kept out of repr), each withheld field with the
    reasons and deciding policies the service sent, and the disclosure's entry."""

    records_request: RecordsRequestRead
    opened: OpenedEnvelope
    withheld: tuple[WithheldFieldRead, ...]
    disclosure_seq: int


def open_answer(
    records_request: RecordsRequestRead,
    delivery: DeliveryRead,
    keys: OrganizationKeys,
    holder_key: bytes,
) -> ReceivedAnswer:
    """Verify and decrypt an answer: sealed by the holder the request names, to
    this organization, for this request and its purpose."""
    _, recipient_key_id = delivery_key_ids(dict(delivery))
    opened = open_delivery(
        delivery,
        recipient_private_key=keys.encryption_private_key(recipient_key_id),
        sender_signing_key=holder_key,
        expected_sender_org=str(records_request["holder_org_id"]),
        expected_recipient_org=keys.org_id,
        expected_context={
            "purpose": records_request["purpose"],
            "request_id": str(records_request["id"]),
        },
    )
    return ReceivedAnswer(
        records_request=records_request,
        opened=opened,
        withheld=tuple(delivery.get("withheld", [])),
        disclosure_seq=int(delivery.get("disclosure_seq", -1)),
    )
