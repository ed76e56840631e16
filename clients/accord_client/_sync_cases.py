# Generated from accord_client/_async_cases.py by clients/tools/unasync.py: do not edit.
"""A survivor's case at the organization that holds it: subjects, consent (every
version, receipts, reviews), the accounting of disclosures, access links for the
survivor, and alleged abusers.

Twin modules: `_async_cases` (the one source) and `_sync_cases`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from accord_client._http import Id, follow_cursors
from accord_client._models import JSON, Consent, Page, Subject
from accord_client._protocol import ConsentDraft, RequestSpec, create, page_of, query
from accord_client.schemas import (
    AccessLink,
    AccessLinkRefusal,
    AllegedAbuserRead,
    DisclosureAccounting,
    SubjectErasure,
    SubjectRead,
)


class CaseMethods:
    """Subjects, consent, disclosures and access links, for `AccordClient`."""

    def request(self, spec: RequestSpec) -> Any:
        raise NotImplementedError  # the client's transport sends it

    # -- subjects -------------------------------------------------------------------------

    def create_subject(
        self, *, is_minor: bool = False, idempotency_key: str | None = None
    ) -> Subject:
        spec = create("/v1/subjects", {"is_minor": is_minor}, idempotency_key)
        return cast(Subject, self.request(spec))

    def get_subject(self, subject_id: Id) -> SubjectRead:
        spec = RequestSpec("GET", f"/v1/subjects/{subject_id}")
        return cast(SubjectRead, self.request(spec))

    def list_disclosures(self, subject_id: Id) -> DisclosureAccounting:
        """The accounting of disclosures: every release of the subject's fields."""
        spec = RequestSpec("GET", f"/v1/subjects/{subject_id}/disclosures")
        return cast(DisclosureAccounting, self.request(spec))

    def erase_subject(self, subject_id: Id, *, reason: str) -> SubjectErasure:
        """Erase the subject (a supervisor of its organization; docs/erasure.md):
        every ciphertext and sealed key about it destroyed, its consents revoked, its
        access links ended. `reason`: survivor_request, case_closed, court_order or
        safety. Idempotent: a second call answers the first erasure."""
        spec = RequestSpec("POST", f"/v1/subjects/{subject_id}/erase", json={"reason": reason})
        return cast(SubjectErasure, self.request(spec))

    def create_access_link(
        self, subject_id: Id, *, lifetime_seconds: int | None = None
    ) -> AccessLink:
        """A one-time link for the survivor's own pages. Hand `url` to the survivor;
        `token` and `url` are secrets: never log them."""
        body = None if lifetime_seconds is None else {"lifetime_seconds": lifetime_seconds}
        spec = RequestSpec("POST", f"/v1/subjects/{subject_id}/access-links", json=body)
        return cast(AccessLink, self.request(spec))

    def revoke_access_link(self, access_link_id: Id) -> None:
        self.request(RequestSpec("DELETE", f"/v1/access-links/{access_link_id}"))

    def list_access_link_refusals(
        self, subject_id: Id, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[AccessLinkRefusal]:
        """Refused uses of the subject's access links, newest first: someone tried."""
        params = query(limit=limit, cursor=cursor)
        path = f"/v1/subjects/{subject_id}/access-link-refusals"
        return page_of(self.request(RequestSpec("GET", path, params=params)))

    def iter_access_link_refusals(
        self, subject_id: Id, *, page_size: int | None = None
    ) -> Iterator[AccessLinkRefusal]:
        def fetch(cursor: str | None) -> Page[AccessLinkRefusal]:
            return self.list_access_link_refusals(subject_id, limit=page_size, cursor=cursor)

        yield from follow_cursors(fetch)

    def record_alleged_abuser(self, subject_id: Id, *, person_ref: str) -> AllegedAbuserRead:
        """Record a person as the subject's alleged abuser, by the opaque reference a
        grant's `giver_ref` carries (64 lowercase hex, never a name): grants with that
        `giver_ref` are refused, and ones already given stop counting."""
        spec = RequestSpec(
            "POST",
            f"/v1/subjects/{subject_id}/alleged-abusers",
            json={"person_ref": person_ref},
        )
        return cast(AllegedAbuserRead, self.request(spec))

    # -- consent ------------------------------------------------------------------------

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
        subject = subject_id or (self.get_consent(consent_id))["subject_id"]
        body = draft.to_json(supersedes=str(consent_id))
        spec = create(f"/v1/subjects/{subject}/consents", body, idempotency_key)
        return cast(Consent, self.request(spec))

    def list_consents(self, subject_id: Id) -> list[Consent]:
        """Every version of every grant, newest first."""
        body = self.request(RequestSpec("GET", f"/v1/subjects/{subject_id}/consents"))
        return cast(list[Consent], body["items"])

    def get_consent(self, consent_id: Id) -> Consent:
        spec = RequestSpec("GET", f"/v1/consents/{consent_id}")
        return cast(Consent, self.request(spec))

    def revoke_consent(self, consent_id: Id, *, reason: str) -> Consent:
        spec = RequestSpec("POST", f"/v1/consents/{consent_id}/revoke", json={"reason": reason})
        return cast(Consent, self.request(spec))

    def get_consent_receipt(self, consent_id: Id) -> JSON:
        """The signed consent receipt (a document of its own format: docs/consent.md)."""
        spec = RequestSpec("GET", f"/v1/consents/{consent_id}/receipt")
        return cast(JSON, self.request(spec))

    def get_consent_fhir(self, consent_id: Id) -> JSON:
        """The grant as an HL7 FHIR R4 `Consent` resource."""
        spec = RequestSpec("GET", f"/v1/consents/{consent_id}/fhir")
        return cast(JSON, self.request(spec))

    def list_consent_reviews(self) -> list[Consent]:
        """Your organization's grants flagged `needs_review`: an agreement they relied
        on no longer permits one of their purposes. Record a new grant or revoke."""
        body = self.request(RequestSpec("GET", "/v1/consent-reviews"))
        return cast(list[Consent], body["items"])
