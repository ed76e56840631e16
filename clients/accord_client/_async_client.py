"""The asynchronous client, `AsyncAccordClient`: the sync client's twin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from typing import Any, cast

import httpx
from tenacity import AsyncRetrying

from accord_client._events_client import AsyncEventMethods
from accord_client._http import (
    DEFAULT_TIMEOUT,
    BearerAuth,
    Id,
    afollow_cursors,
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


class AsyncAccordClient(AsyncEventMethods):
    """Asynchronous twin of `AccordClient`: the same methods, awaited; iterators are
    async iterators. Use `async with`, or `await close()`."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._auth = BearerAuth(token)
        self._retry = retry or RetryPolicy()
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout, transport=transport)
        self._signing_keys: dict[tuple[str, str], bytes] = {}

    async def __aenter__(self) -> AsyncAccordClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncAccordClient(base_url={self._base!r})"

    # -- transport ----------------------------------------------------------------------

    async def _once(self, spec: RequestSpec) -> httpx.Response:
        response = await self._http.request(
            spec.method,
            self._base + spec.path,
            params=spec.params,
            json=spec.json,
            headers=spec.headers,
            auth=self._auth,
        )
        raise_for_problem(response)
        return response

    async def request(self, spec: RequestSpec) -> Any:
        """Send one call (retried when idempotent) and return its JSON body (None for 204)."""
        if not spec.idempotent or self._retry.attempts == 1:
            return response_body(await self._once(spec))
        response: httpx.Response = await AsyncRetrying(**retry_args(self._retry, spec))(
            self._once, spec
        )
        return response_body(response)

    # -- organizations ------------------------------------------------------------------

    async def list_organizations(
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
        return page_of(await self.request(RequestSpec("GET", "/v1/organizations", params=params)))

    async def iter_organizations(
        self,
        *,
        sector: str | None = None,
        service: str | None = None,
        language: str | None = None,
        accepting: bool | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[Organization]:
        async def fetch(cursor: str | None) -> Page[Organization]:
            return await self.list_organizations(
                sector=sector,
                service=service,
                language=language,
                accepting=accepting,
                limit=page_size,
                cursor=cursor,
            )

        async for item in afollow_cursors(fetch):
            yield item

    async def get_organization(self, org_id: Id) -> Organization:
        spec = RequestSpec("GET", f"/v1/organizations/{org_id}")
        return cast(Organization, await self.request(spec))

    async def get_key_history(self, org_id: Id) -> JSON:
        spec = RequestSpec("GET", f"/v1/organizations/{org_id}/keys")
        return cast(JSON, await self.request(spec))

    async def register_keys(self, org_id: Id, keys: OrganizationKeys) -> KeysRegistered:
        """Publish the current public keys of a key file (old keys stay in the directory)."""
        spec = RequestSpec(
            "PUT", f"/v1/organizations/{org_id}/keys", json=keys.public_registration()
        )
        return cast(KeysRegistered, await self.request(spec))

    async def set_availability(self, org_id: Id, availability: Mapping[str, Any]) -> Organization:
        """`{accepting_referrals, capacity?, hours, languages, services, populations}`."""
        spec = RequestSpec(
            "PUT", f"/v1/organizations/{org_id}/availability", json=dict(availability)
        )
        return cast(Organization, await self.request(spec))

    # -- subjects and consent -----------------------------------------------------------

    async def create_subject(
        self, *, is_minor: bool = False, idempotency_key: str | None = None
    ) -> Subject:
        spec = create("/v1/subjects", {"is_minor": is_minor}, idempotency_key)
        return cast(Subject, await self.request(spec))

    async def create_consent(
        self, subject_id: Id, draft: ConsentDraft, *, idempotency_key: str | None = None
    ) -> Consent:
        spec = create(f"/v1/subjects/{subject_id}/consents", draft.to_json(), idempotency_key)
        return cast(Consent, await self.request(spec))

    async def amend_consent(
        self,
        consent_id: Id,
        draft: ConsentDraft,
        *,
        subject_id: Id | None = None,
        idempotency_key: str | None = None,
    ) -> Consent:
        """A new version that supersedes `consent_id` (which must be the current one)."""
        subject = subject_id or (await self.get_consent(consent_id))["subject_id"]
        body = draft.to_json(supersedes=str(consent_id))
        spec = create(f"/v1/subjects/{subject}/consents", body, idempotency_key)
        return cast(Consent, await self.request(spec))

    async def list_consents(self, subject_id: Id) -> list[Consent]:
        """Every version of every grant, newest first."""
        body = await self.request(RequestSpec("GET", f"/v1/subjects/{subject_id}/consents"))
        return cast(list[Consent], body["items"])

    async def get_consent(self, consent_id: Id) -> Consent:
        spec = RequestSpec("GET", f"/v1/consents/{consent_id}")
        return cast(Consent, await self.request(spec))

    async def revoke_consent(self, consent_id: Id, *, reason: str) -> Consent:
        spec = RequestSpec("POST", f"/v1/consents/{consent_id}/revoke", json={"reason": reason})
        return cast(Consent, await self.request(spec))

    async def get_consent_receipt(self, consent_id: Id) -> JSON:
        spec = RequestSpec("GET", f"/v1/consents/{consent_id}/receipt")
        return cast(JSON, await self.request(spec))

    async def get_consent_fhir(self, consent_id: Id) -> JSON:
        spec = RequestSpec("GET", f"/v1/consents/{consent_id}/fhir")
        return cast(JSON, await self.request(spec))

    async def list_disclosures(self, subject_id: Id) -> JSON:
        spec = RequestSpec("GET", f"/v1/subjects/{subject_id}/disclosures")
        return cast(JSON, await self.request(spec))

    # -- policy -------------------------------------------------------------------------

    async def get_policies(self) -> JSON:
        return cast(JSON, await self.request(RequestSpec("GET", "/v1/policies")))

    async def explain_policy(
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
        spec = RequestSpec("POST", "/v1/policies/explain", json=body)
        return cast(JSON, await self.request(spec))

    # -- audit --------------------------------------------------------------------------

    async def get_audit_checkpoint(self) -> JSON:
        return cast(JSON, await self.request(RequestSpec("GET", "/v1/audit/checkpoint")))

    async def list_audit_entries(
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
        body = await self.request(RequestSpec("GET", "/v1/audit/entries", params=params))
        return AuditPage(items=list(body["items"]), next_after_seq=body.get("next_after_seq"))

    async def iter_audit_entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        org: Id | None = None,
        subject: str | None = None,
        action: str | None = None,
        after_seq: int | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[JSON]:
        while True:
            page = await self.list_audit_entries(
                since=since,
                until=until,
                org=org,
                subject=subject,
                action=action,
                after_seq=after_seq,
                limit=page_size,
            )
            for item in page.items:
                yield item
            if page.next_after_seq is None:
                return
            after_seq = page.next_after_seq

    # -- referrals ----------------------------------------------------------------------

    async def create_referral(
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
        return cast(Referral, await self.request(create("/v1/referrals", body, idempotency_key)))

    async def list_referrals(
        self,
        *,
        box: Box,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Referral]:
        params = query(box=box, status=status, limit=limit, cursor=cursor)
        return page_of(await self.request(RequestSpec("GET", "/v1/referrals", params=params)))

    async def iter_referrals(
        self, *, box: Box, status: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[Referral]:
        async def fetch(cursor: str | None) -> Page[Referral]:
            return await self.list_referrals(box=box, status=status, limit=page_size, cursor=cursor)

        async for item in afollow_cursors(fetch):
            yield item

    async def get_referral(self, referral_id: Id) -> Referral:
        spec = RequestSpec("GET", f"/v1/referrals/{referral_id}")
        return cast(Referral, await self.request(spec))

    async def deliver_referral(self, referral_id: Id) -> JSON:
        """The raw delivery (open it with `receive_referral` or envelope.open_delivery).
        Not retried: every delivery is a disclosure with its own audit entry."""
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/deliver")
        return cast(JSON, await self.request(spec))

    async def accept_referral(self, referral_id: Id) -> Referral:
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/accept")
        return cast(Referral, await self.request(spec))

    async def decline_referral(self, referral_id: Id, *, reason: DeclineReason) -> Referral:
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/decline", json={"reason": reason})
        return cast(Referral, await self.request(spec))

    async def close_referral(self, referral_id: Id, *, outcome: str) -> Referral:
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/close", json={"outcome": outcome})
        return cast(Referral, await self.request(spec))

    async def withdraw_referral(self, referral_id: Id) -> Referral:
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/withdraw")
        return cast(Referral, await self.request(spec))

    async def send_referral(
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
        recipient = await self.get_organization(recipient_org_id)
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
        return await self.create_referral(
            subject_id=subject_id,
            recipient_org_id=recipient_org_id,
            consent_id=consent_id,
            purpose=purpose,
            envelope=envelope,
            services_requested=services_requested,
            urgency=urgency,
            idempotency_key=idempotency_key,
        )

    async def sender_signing_key(self, org_id: Id, key_id: str) -> bytes:
        """The organization's Ed25519 key with this id, from the directory (cached)."""
        cache_key = (str(org_id), key_id)
        if cache_key not in self._signing_keys:
            history = await self.get_key_history(org_id)
            self._signing_keys[cache_key] = signing_key_from_history(history, key_id)
        return self._signing_keys[cache_key]

    async def receive_referral(self, referral_id: Id, keys: OrganizationKeys) -> ReceivedReferral:
        """Deliver, then verify with the sender's key from the directory and decrypt.
        Raises an EnvelopeError (and returns no value) if any check fails."""
        referral = await self.get_referral(referral_id)
        delivery = await self.deliver_referral(referral_id)
        sender_key_id = str(delivery.get("sender_key_id", ""))
        sender_key = await self.sender_signing_key(referral["sender_org_id"], sender_key_id)
        return open_received(referral, delivery, keys, sender_key)
