# Generated from accord_client/_async_records.py by clients/tools/unasync.py: do not edit.
"""Records requests from law enforcement and prosecutors, and the duties they
leave: obligations to tell the survivor, and supervisors' reviews of releases.

Twin modules: `_async_records` (the one source) and `_sync_records`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Literal, cast

from accord_client._http import Id, follow_cursors
from accord_client._models import Page
from accord_client._protocol import RequestSpec, iso_time, page_of, query, recipient_encryption_key
from accord_client._records_protocol import (
    DoneHow,
    Finding,
    LegalBasis,
    ReceivedAnswer,
    RecordsBox,
    obligation_done_body,
    open_answer,
    records_request_body,
    review_close_body,
)
from accord_client._sync_directory import DirectoryMethods
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import OrganizationKeys
from accord_client.schemas import (
    DeliveryRead,
    ObligationRead,
    RecordsRequestRead,
    ReviewRead,
    SuspensionRead,
)


class RecordsMethods(DirectoryMethods):
    """Records requests, obligations and reviews, for `AccordClient`."""

    # -- the requester (investigator, prosecutor) -----------------------------------------

    def create_records_request(
        self,
        *,
        holder_org_id: Id,
        subject_ref: str,
        categories: Iterable[str],
        purpose: str,
        legal_basis: LegalBasis,
        justification: str,
        legal_reference: str | None = None,
        document_sha256: str | None = None,
    ) -> RecordsRequestRead:
        """Ask the holder; the answer carries the preliminary outlook per category.
        Not retried (the service keeps no Idempotency-Key for it)."""
        body = records_request_body(
            holder_org_id=str(holder_org_id),
            subject_ref=subject_ref,
            categories=categories,
            purpose=purpose,
            legal_basis=legal_basis,
            justification=justification,
            legal_reference=legal_reference,
            document_sha256=document_sha256,
        )
        spec = RequestSpec("POST", "/v1/records-requests", json=body)
        return cast(RecordsRequestRead, self.request(spec))

    def list_records_requests(
        self, *, box: RecordsBox, limit: int | None = None, cursor: str | None = None
    ) -> Page[RecordsRequestRead]:
        params = query(box=box, limit=limit, cursor=cursor)
        spec = RequestSpec("GET", "/v1/records-requests", params=params)
        return page_of(self.request(spec))

    def iter_records_requests(
        self, *, box: RecordsBox, page_size: int | None = None
    ) -> Iterator[RecordsRequestRead]:
        def fetch(cursor: str | None) -> Page[RecordsRequestRead]:
            return self.list_records_requests(box=box, limit=page_size, cursor=cursor)

        yield from follow_cursors(fetch)

    def get_records_request(self, request_id: Id) -> RecordsRequestRead:
        spec = RequestSpec("GET", f"/v1/records-requests/{request_id}")
        return cast(RecordsRequestRead, self.request(spec))

    def deliver_records_request(self, request_id: Id) -> DeliveryRead:
        """The raw answer (open it with `receive_records_answer`); `withheld` lists
        each withheld field with its reasons and policies. Not retried: a disclosure."""
        spec = RequestSpec("POST", f"/v1/records-requests/{request_id}/deliver")
        return cast(DeliveryRead, self.request(spec))

    def receive_records_answer(self, request_id: Id, keys: OrganizationKeys) -> ReceivedAnswer:
        """Deliver, then verify with the holder's key from the directory and decrypt.
        Raises an EnvelopeError (and returns no value) if any check fails."""
        records_request = self.get_records_request(request_id)
        delivery = self.deliver_records_request(request_id)
        holder_key = self.sender_signing_key(
            records_request["holder_org_id"], str(delivery.get("sender_key_id", ""))
        )
        return open_answer(records_request, delivery, keys, holder_key)

    # -- the holder (caseworker, supervisor) ----------------------------------------------

    def respond_records_request(
        self,
        request_id: Id,
        *,
        decision: Literal["release", "refuse"],
        envelope: Mapping[str, object] | None = None,
        consent_id: Id | None = None,
        note: str | None = None,
    ) -> RecordsRequestRead:
        """Answer once: refuse (with a `note` the requester sees) or release an
        envelope sealed to the requester (see `answer_records_request`)."""
        body: dict[str, object] = {"decision": decision}
        if envelope is not None:
            body["envelope"] = dict(envelope)
        if consent_id is not None:
            body["consent_id"] = str(consent_id)
        if note is not None:
            body["note"] = note
        spec = RequestSpec("POST", f"/v1/records-requests/{request_id}/respond", json=body)
        return cast(RecordsRequestRead, self.request(spec))

    def answer_records_request(
        self,
        request_id: Id,
        *,
        keys: OrganizationKeys,
        subject_id: Id,
        fields: Iterable[PlainField],
        consent_id: Id | None = None,
        note: str | None = None,
    ) -> RecordsRequestRead:
        """Seal `fields` to the requester's current key from the directory (context:
        the subject, the request's purpose, the request id, the consent) and release."""
        records_request = self.get_records_request(request_id)
        requester = records_request["requester_org_id"]
        envelope = seal_envelope(
            fields,
            sender_org=keys.org_id,
            sender_signing_key=keys.current_signing_key.seed,
            recipient_org=str(requester),
            recipient_encryption_key=recipient_encryption_key(self.get_organization(requester)),
            subject_id=str(subject_id),
            purpose=records_request["purpose"],
            consent_id=None if consent_id is None else str(consent_id),
            request_id=str(request_id),
        )
        return self.respond_records_request(
            request_id, decision="release", envelope=envelope, consent_id=consent_id, note=note
        )

    def suspend_accounting(
        self, request_id: Id, *, document_sha256: str, until: datetime | str
    ) -> SuspensionRead:
        """Suspend the survivor's accounting of this disclosure on an agency's written
        request (its SHA-256), until a time when it ends by itself."""
        body = {"document_sha256": document_sha256, "until": iso_time(until)}
        spec = RequestSpec("POST", f"/v1/records-requests/{request_id}/suspension", json=body)
        return cast(SuspensionRead, self.request(spec))

    # -- obligations and reviews --------------------------------------------------------

    def list_obligations(self, *, include_done: bool = False) -> list[ObligationRead]:
        """Your organization's duties to tell a survivor of a compelled release."""
        params = query(include_done=include_done)
        body = self.request(RequestSpec("GET", "/v1/obligations", params=params))
        return cast(list[ObligationRead], body["items"])

    def complete_obligation(
        self, obligation_id: Id, *, how: DoneHow, done_at: datetime | str
    ) -> ObligationRead:
        spec = RequestSpec(
            "POST",
            f"/v1/obligations/{obligation_id}/done",
            json=obligation_done_body(how, done_at),
        )
        return cast(ObligationRead, self.request(spec))

    def list_reviews(self, *, include_closed: bool = False) -> list[ReviewRead]:
        """Reviews of emergency releases (supervisors; another supervisor closes each)."""
        params = query(include_closed=include_closed)
        body = self.request(RequestSpec("GET", "/v1/reviews", params=params))
        return cast(list[ReviewRead], body["items"])

    def close_review(
        self,
        review_id: Id,
        *,
        finding: Finding,
        survivor_notified: bool,
        reason_not_notified: str | None = None,
    ) -> ReviewRead:
        body = review_close_body(finding, survivor_notified, reason_not_notified)
        spec = RequestSpec("POST", f"/v1/reviews/{review_id}/close", json=body)
        return cast(ReviewRead, self.request(spec))
