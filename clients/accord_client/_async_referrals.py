"""Referrals: create, list, deliver and answer them, and the helpers that seal
to the directory's key (`send_referral`) and open with it (`receive_referral`).

Twin modules: `_async_referrals` (the one source) and `_sync_referrals`, generated
from it by clients/tools/unasync.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import cast

from accord_client._async_directory import AsyncDirectoryMethods
from accord_client._http import Id, afollow_cursors
from accord_client._models import Box, DeclineReason, Page, Referral, Urgency
from accord_client._protocol import (
    ReceivedReferral,
    RequestSpec,
    create,
    open_received,
    page_of,
    query,
    recipient_encryption_key,
    referral_body,
)
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import OrganizationKeys
from accord_client.schemas import DeliveryRead


class AsyncReferralMethods(AsyncDirectoryMethods):
    """Referrals, for `AsyncAccordClient` (keys come from the directory methods)."""

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

    async def deliver_referral(self, referral_id: Id) -> DeliveryRead:
        """The raw delivery (open it with `receive_referral` or envelope.open_delivery);
        `withheld` lists each withheld field with the reasons and deciding policies.
        Not retried: every delivery is a disclosure with its own audit entry."""
        spec = RequestSpec("POST", f"/v1/referrals/{referral_id}/deliver")
        return cast(DeliveryRead, await self.request(spec))

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

    # -- helpers: the directory is the only source of keys --------------------------------

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

    async def receive_referral(self, referral_id: Id, keys: OrganizationKeys) -> ReceivedReferral:
        """Deliver, then verify with the sender's key from the directory and decrypt.
        Raises an EnvelopeError (and returns no value) if any check fails."""
        referral = await self.get_referral(referral_id)
        delivery = await self.deliver_referral(referral_id)
        sender_key_id = str(delivery.get("sender_key_id", ""))
        sender_key = await self.sender_signing_key(referral["sender_org_id"], sender_key_id)
        return open_received(referral, delivery, keys, sender_key)
