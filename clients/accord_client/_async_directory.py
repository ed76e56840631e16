"""The directory: organizations, their keys, availability and stricter rules,
collaborations and their agreements, and the shared policies.

Twin modules: `_async_directory` (the one source) and `_sync_directory`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, cast

from accord_client._http import Id, afollow_cursors, org_page_query
from accord_client._models import KeysRegistered, Organization, Page
from accord_client._protocol import (
    RequestSpec,
    explain_body,
    page_of,
    query,
    signing_key_from_history,
)
from accord_client.keys import OrganizationKeys
from accord_client.schemas import (
    AgreementHistory,
    CollaborationRead,
    ExplainResponse,
    KeyHistory,
    MemberRead,
    OrganizationRead,
    OrgPolicyRead,
    PolicySetRead,
    SignatureRead,
    SignaturesWithdrawn,
)


class AsyncDirectoryMethods:
    """Organizations, collaborations and policies, for `AsyncAccordClient`."""

    _signing_keys: dict[tuple[str, str], bytes]

    async def request(self, spec: RequestSpec) -> Any:
        raise NotImplementedError  # the client's transport sends it

    # -- organizations ------------------------------------------------------------------

    async def create_organization(
        self, *, name: str, sector: str, jurisdiction: str | None = None
    ) -> OrganizationRead:
        """Add an organization to the directory (platform_admin)."""
        body = {"name": name, "sector": sector, "jurisdiction": jurisdiction}
        spec = RequestSpec("POST", "/v1/organizations", json=body)
        return cast(OrganizationRead, await self.request(spec))

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

    async def get_key_history(self, org_id: Id) -> KeyHistory:
        """Every public key the organization ever registered, retired ones included."""
        spec = RequestSpec("GET", f"/v1/organizations/{org_id}/keys")
        return cast(KeyHistory, await self.request(spec))

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

    async def set_confidential(self, org_id: Id, *, confidential: bool) -> Organization:
        """Mark the organization confidential or not (its admins): a confidential
        organization is named only to members of its collaborations and to oversight."""
        spec = RequestSpec(
            "PUT",
            f"/v1/organizations/{org_id}/confidentiality",
            json={"confidential": confidential},
        )
        return cast(Organization, await self.request(spec))

    async def sender_signing_key(self, org_id: Id, key_id: str) -> bytes:
        """The organization's Ed25519 key with this id, from the directory's key
        history (cached; retired keys included, never a key carried in a delivery)."""
        cache_key = (str(org_id), key_id)
        if cache_key not in self._signing_keys:
            history = await self.get_key_history(org_id)
            self._signing_keys[cache_key] = signing_key_from_history(history, key_id)
        return self._signing_keys[cache_key]

    async def set_org_policy(self, org_id: Id, *, cedar: str) -> OrgPolicyRead:
        """The organization's own stricter rules: Cedar `forbid` statements, each with
        `@id` and `@reason` annotations (org_admin; they can only tighten)."""
        spec = RequestSpec("PUT", f"/v1/organizations/{org_id}/policy", json={"cedar": cedar})
        return cast(OrgPolicyRead, await self.request(spec))

    # -- collaborations ----------------------------------------------------------------

    async def create_collaboration(
        self, *, name: str, agreement: Mapping[str, Any]
    ) -> CollaborationRead:
        """A collaboration and its first agreement (see `agreement_body`; platform_admin)."""
        body = {"name": name, "agreement": dict(agreement)}
        spec = RequestSpec("POST", "/v1/collaborations", json=body)
        return cast(CollaborationRead, await self.request(spec))

    async def list_collaborations(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[CollaborationRead]:
        params = query(limit=limit, cursor=cursor)
        return page_of(await self.request(RequestSpec("GET", "/v1/collaborations", params=params)))

    async def iter_collaborations(
        self, *, page_size: int | None = None
    ) -> AsyncIterator[CollaborationRead]:
        async def fetch(cursor: str | None) -> Page[CollaborationRead]:
            return await self.list_collaborations(limit=page_size, cursor=cursor)

        async for item in afollow_cursors(fetch):
            yield item

    async def get_collaboration(self, collab_id: Id) -> CollaborationRead:
        spec = RequestSpec("GET", f"/v1/collaborations/{collab_id}")
        return cast(CollaborationRead, await self.request(spec))

    async def list_agreements(self, collab_id: Id) -> AgreementHistory:
        """Every version of the collaboration's agreement."""
        spec = RequestSpec("GET", f"/v1/collaborations/{collab_id}/agreements")
        return cast(AgreementHistory, await self.request(spec))

    async def set_agreement(self, collab_id: Id, agreement: Mapping[str, Any]) -> CollaborationRead:
        """A new agreement version (see `agreement_body`); the old one is kept."""
        spec = RequestSpec("PUT", f"/v1/collaborations/{collab_id}/agreement", json=dict(agreement))
        return cast(CollaborationRead, await self.request(spec))

    async def sign_agreement(
        self, collab_id: Id, *, version: int, key_id: str, signature: str
    ) -> SignatureRead:
        """Countersign a version for your organization (org_admin). Make `key_id` and
        `signature` in the client with `accord_client.agreements.countersignature`."""
        spec = RequestSpec(
            "POST",
            f"/v1/collaborations/{collab_id}/agreements/signatures",
            json={"version": int(version), "key_id": key_id, "signature": signature},
        )
        return cast(SignatureRead, await self.request(spec))

    async def withdraw_agreement_signature(self, collab_id: Id, org_id: Id) -> SignaturesWithdrawn:
        """Withdraw your organization's signatures (org_admin): its flows in this
        collaboration end for every later release, and the members are told."""
        spec = RequestSpec(
            "DELETE", f"/v1/collaborations/{collab_id}/agreements/signatures/{org_id}"
        )
        return cast(SignaturesWithdrawn, await self.request(spec))

    async def add_member(self, collab_id: Id, org_id: Id) -> MemberRead:
        spec = RequestSpec(
            "POST", f"/v1/collaborations/{collab_id}/members", json={"org_id": str(org_id)}
        )
        return cast(MemberRead, await self.request(spec))

    async def remove_member(self, collab_id: Id, org_id: Id) -> None:
        """From now on, no field flows to or from it under this collaboration."""
        spec = RequestSpec("DELETE", f"/v1/collaborations/{collab_id}/members/{org_id}")
        await self.request(spec)

    # -- policy -------------------------------------------------------------------------

    async def get_policies(self) -> PolicySetRead:
        return cast(PolicySetRead, await self.request(RequestSpec("GET", "/v1/policies")))

    async def explain_policy(
        self,
        *,
        recipient_org_id: Id,
        purpose: str,
        legal_basis: str,
        categories: Iterable[str],
        consent: Mapping[str, Any] | None = None,
        justification_given: bool = False,
    ) -> ExplainResponse:
        body = explain_body(
            recipient_org_id=str(recipient_org_id),
            purpose=purpose,
            legal_basis=legal_basis,
            categories=categories,
            consent=consent,
            justification_given=justification_given,
        )
        spec = RequestSpec("POST", "/v1/policies/explain", json=body)
        return cast(ExplainResponse, await self.request(spec))
