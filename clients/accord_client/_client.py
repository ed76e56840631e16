"""The synchronous client, `AccordClient` (docs: clients/README.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, cast

import httpx
from tenacity import Retrying

from accord_client._events_client import EventMethods
from accord_client._http import (
    DEFAULT_TIMEOUT,
    BearerAuth,
    Id,
    follow_cursors,
    org_page_query,
    retry_args,
)
from accord_client.api_models import (
    JSON,
    AuditPage,
    Box,
    Consent,
    ConsentDraft,
    DeclineReason,
    KeysRegistered,
    Organization,
    Page,
    ReceivedReferral,
    Referral,
    RequestSpec,
    RetryPolicy,
    Subject,
    Urgency,
    create,
    explain_body,
    open_received,
    page_of,
    query,
    raise_for_problem,
    recipient_encryption_key,
    referral_body,
    response_body,
    signing_key_from_history,
)
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import OrganizationKeys


class AccordClient(EventMethods):
    """Synchronous client. Use as a context manager, or call `close()`.

    `http_client` (an existing httpx.Client) or `transport` may be given, e.g. for
    tests; a client passed in is not closed by this one.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._auth = BearerAuth(token)
        self._retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport)
        self._signing_keys: dict[tuple[str, str], bytes] = {}

    def __enter__(self) -> AccordClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __repr__(self) -> str:
        return f"AccordClient(base_url={self._base!r})"

    # -- transport ----------------------------------------------------------------------

    def _once(self, spec: RequestSpec) -> httpx.Response:
        response = self._http.request(
            spec.method,
            self._base + spec.path,
            params=spec.params,
            json=spec.json,
            headers=spec.headers,
            auth=self._auth,
        )
        raise_for_problem(response)
        return response

    def request(self, spec: RequestSpec) -> Any:
        """Send one call (retried when idempotent) and return its JSON body (None for 204)."""
        if not spec.idempotent or self._retry.attempts == 1:
            return response_body(self._once(spec))
        return response_body(Retrying(**retry_args(self._retry, spec))(self._once, spec))

    # -- organizations ------------------------------------------------------------------

    def list_organizations(
        self,
        *,
        sector: str | None = None,
        service: str | None = None,
        language: str | None = None,
        accepting: bool | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Organization]:
        filters = org_page_query(sector, service, language, accepting)
        params = query(**filters, limit=limit, cursor=cursor)
        return page_of(self.request(RequestSpec("GET", "/v1/organizations", params=params)))

    def iter_organizations(
        self,
        *,
        sector: str | None = None,
        service: str | None = None,
        language: str | None = None,
        accepting: bool | None = None,
        page_size: int | None = None,
    ) -> Iterator[Organization]:
        return follow_cursors(
            lambda cursor: self.list_organizations(
                sector=sector,
                service=service,
                language=language,
                accepting=accepting,
                limit=page_size,
                cursor=cursor,
            )
        )

    def get_organization(self, org_id: Id) -> Organization:
        return cast(Organization, self.request(RequestSpec("GET", f"/v1/organizations/{org_id}")))

    def get_key_history(self, org_id: Id) -> JSON:
        return cast(JSON, self.request(RequestSpec("GET", f"/v1/organizations/{org_id}/keys")))

    def register_keys(self, org_id: Id, keys: OrganizationKeys) -> KeysRegistered:
        """Publish the current public keys of a key file (old keys stay in the directory)."""
        spec = RequestSpec(
            "PUT", f"/v1/organizations/{org_id}/keys", json=keys.public_registration()
        )
        return cast(KeysRegistered, self.request(spec))

    def set_availability(self, org_id: Id, availability: Mapping[str, Any]) -> Organization:
        """`{accepting_referrals, capacity?, hours, languages, services, populations}`."""
        spec = RequestSpec(
            "PUT", f"/v1/organizations/{org_id}/availability", json=dict(availability)
        )
        return cast(Organization, self.request(spec))

    # -- subjects and consent -----------------------------------------------------------

    def create_subject(
        self, *, is_minor: bool = False, idempotency_key: str | None = None
    ) -> Subject:
        spec = create("/v1/subjects", {"is_minor": is_minor}, idempotency_key)
        return cast(Subject, self.request(spec))

    def create_consent(
        self, subject_id: Id, draft: ConsentDraft, *, idempotency_key: str | None = None
    ) -> Consent:
        spec = create(f"/v1/subjects/{subject_id}/consents", draft.to_json(), idempotency_key)
        return cast(Consent, self.request(spec))

    def amend_consent(
        self,
        consent_id: Id,
        draft: ConsentDraft,
        *,
        subject_id: Id | None = None,
        idempotency_key: str | None = None,
    ) -> Consent:
        """A new version that supersedes `consent_id` (which must be the current one)."""
        subject = subject_id or self.get_consent(consent_id)["subject_id"]
        body = draft.to_json(supersedes=str(consent_id))
        spec = create(f"/v1/subjects/{subject}/consents", body, idempotency_key)
        return cast(Consent, self.request(spec))

    def list_consents(self, subject_id: Id) -> list[Consent]:
        """Every version of every grant, newest first."""
        body = self.request(RequestSpec("GET", f"/v1/subjects/{subject_id}/consents"))
        return cast(list[Consent], body["items"])

    def get_consent(self, consent_id: Id) -> Consent:
        return cast(Consent, self.request(RequestSpec("GET", f"/v1/consents/{consent_id}")))

    def revoke_consent(self, consent_id: Id, *, reason: str) -> Consent:
        spec = RequestSpec("POST", f"/v1/consents/{consent_id}/revoke", json={"reason": reason})
        return cast(Consent, self.request(spec))

    def get_consent_receipt(self, consent_id: Id) -> JSON:
        return cast(JSON, self.request(RequestSpec("GET", f"/v1/consents/{consent_id}/receipt")))

    def get_consent_fhir(self, consent_id: Id) -> JSON:
        return cast(JSON, self.request(RequestSpec("GET", f"/v1/consents/{consent_id}/fhir")))

    def list_disclosures(self, subject_id: Id) -> JSON:
        return cast(
            JSON, self.request(RequestSpec("GET", f"/v1/subjects/{subject_id}/disclosures"))
        )

    # -- policy -------------------------------------------------------------------------

    def get_policies(self) -> JSON:
        return cast(JSON, self.request(RequestSpec("GET", "/v1/policies")))

    def explain_policy(
        self,
        *,
        recipient_org_id: Id,
        purpose: str,
        legal_basis: str,
        categories: Iterable[str],
        consent: Mapping[str, Any] | None = None,
        justification_given: bool = False,
    ) -> JSON:
        body = explain_body(
            recipient_org_id=str(recipient_org_id),
            purpose=purpose,
            legal_basis=legal_basis,
            categories=categories,
            consent=consent,
            justification_given=justification_given,
        )
        return cast(JSON, self.request(RequestSpec("POST", "/v1/policies/explain", json=body)))

    # -- audit --------------------------------------------------------------------------

    def get_audit_checkpoint(self) -> JSON:
        return cast(JSON, self.request(RequestSpec("GET", "/v1/audit/checkpoint")))

    def list_audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        org: Id | None = None,
        subject: str | None = None,
        action: str | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> AuditPage:
        params = query(
            since=since, until=until, org=org, subject=subject, action=action,
            after_seq=after_seq, limit=limit,
        )  # fmt: skip
        body = self.request(RequestSpec("GET", "/v1/audit/entries", params=params))
        return AuditPage(items=list(body["items"]), next_after_seq=body.get("next_after_seq"))

    def iter_audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        org: Id | None = None,
        subject: str | None = None,
        action: str | None = None,
        after_seq: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[JSON]:
        while True:
            page = self.list_audit_entries(
                since=since,
                until=until,
                org=org,
                subject=subject,
                action=action,
                after_seq=after_seq,
                limit=page_size,
            )
            yield from page.items
            if page.next_after_seq is None:
                return
            after_seq = page.next_after_seq

    # -- referrals ----------------------------------------------------------------------

    def create_referral(
        self,
        *,
        subject_id: Id,
        recipient_org_id: Id,
        consent_id: Id,
        purpose: str,
        envelope: Mapping[str, object],
        services_requested: Iterable[str] = (),
        urgency: Urgency = "routine",
        idempotency_key: str | None = None,
    ) -> Referral:
        body = referral_body(
            subject_id=str(subject_id),
            recipient_org_id=str(recipient_org_id),
            consent_id=str(consent_id),
            purpose=purpose,
            envelope=envelope,
            services_requested=services_requested,
            urgency=urgency,
        )
        return cast(Referral, self.request(create("/v1/referrals", body, idempotency_key)))

    def list_referrals(
        self,
        *,
        box: Box,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Referral]:
        params = query(box=box, status=status, limit=limit, cursor=cursor)
        return page_of(self.request(RequestSpec("GET", "/v1/referrals", params=params)))

    def iter_referrals(
        self, *, box: Box, status: str | None = None, page_size: int | None = None
    ) -> Iterator[Referral]:
        return follow_cursors(
            lambda cursor: self.list_referrals(
                box=box, status=status, limit=page_size, cursor=cursor
            )
        )

    def get_referral(self, referral_id: Id) -> Referral:
        return cast(Referral, self.request(RequestSpec("GET", f"/v1/referrals/{referral_id}")))

    def deliver_referral(self, referral_id: Id) -> JSON:
        """The raw delivery (open it with `receive_referral` or envelope.open_delivery).
        Not retried: every delivery is a disclosure with its own audit entry."""
        return cast(JSON, self.request(RequestSpec("POST", f"/v1/referrals/{referral_id}/deliver")))

    def accept_referral(self, referral_id: Id) -> Referral:
        return cast(
            Referral, self.request(RequestSpec("POST", f"/v1/referrals/{referral_id}/accept"))
        )

    def decline_referral(self, referral_id: Id, *, reason: DeclineReason) -> Referral:
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/decline", json={"reason": reason})
        return cast(Referral, self.request(spec))

    def close_referral(self, referral_id: Id, *, outcome: str) -> Referral:
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/close", json={"outcome": outcome})
        return cast(Referral, self.request(spec))

    def withdraw_referral(self, referral_id: Id) -> Referral:
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/withdraw")
        return cast(Referral, self.request(spec))

    def send_referral(
        self,
        *,
        keys: OrganizationKeys,
        recipient_org_id: Id,
        subject_id: Id,
        consent_id: Id,
        purpose: str,
        fields: Iterable[PlainField],
        services_requested: Iterable[str] = (),
        urgency: Urgency = "routine",
        idempotency_key: str | None = None,
    ) -> Referral:
        """Seal `fields` to the recipient's current key from the directory, sign with
        this organization's current signing key, and post the referral."""
        recipient = self.get_organization(recipient_org_id)
        envelope = seal_envelope(
            fields,
            sender_org=keys.org_id,
            sender_signing_key=keys.current_signing_key.seed,
            recipient_org=str(recipient_org_id),
            recipient_encryption_key=recipient_encryption_key(recipient),
            subject_id=str(subject_id),
            purpose=purpose,
            consent_id=str(consent_id),
        )
        return self.create_referral(
            subject_id=subject_id,
            recipient_org_id=recipient_org_id,
            consent_id=consent_id,
            purpose=purpose,
            envelope=envelope,
            services_requested=services_requested,
            urgency=urgency,
            idempotency_key=idempotency_key,
        )

    def sender_signing_key(self, org_id: Id, key_id: str) -> bytes:
        """The organization's Ed25519 key with this id, from the directory (cached)."""
        cache_key = (str(org_id), key_id)
        if cache_key not in self._signing_keys:
            history = self.get_key_history(org_id)
            self._signing_keys[cache_key] = signing_key_from_history(history, key_id)
        return self._signing_keys[cache_key]

    def receive_referral(self, referral_id: Id, keys: OrganizationKeys) -> ReceivedReferral:
        """Deliver, then verify with the sender's key from the directory and decrypt.
        Raises an EnvelopeError (and returns no value) if any check fails."""
        referral = self.get_referral(referral_id)
        delivery = self.deliver_referral(referral_id)
        sender_key_id = str(delivery.get("sender_key_id", ""))
        sender_key = self.sender_signing_key(referral["sender_org_id"], sender_key_id)
        return open_received(referral, delivery, keys, sender_key)
