"""A referral kit: registered keys for the VSP and the shelter, a subject with a
consent, and helpers that seal, send, deliver and open through the client library.

Field values are generated test fixtures, planted so that the zero-knowledge tests
can look for them in the raw database."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from accord_client.envelope import OpenedEnvelope, PlainField, open_delivery, seal_envelope
from accord_client.keys import OrganizationKeys, generate_organization_keys
from sqlalchemy import select

from service.auth.principals import Role
from service.referrals.models import ReferralField
from tests.support.factories import new_consent
from tests.support.world import World

CATEGORIES = ["identity", "contact", "language", "needs"]

# Planted values: distinctive, non-ASCII included, found nowhere else in the code base.
PLANTED = {
    "full_name": "Zoë Planted-Quixote Ñandú",
    "phone": "+1-555-0199-7788-planted",
    "language": "Tigrinya ትግርኛ planted",
    "needs": "needs-planted shelter for two, ground floor",
}
PLANTED_CATEGORIES = {
    "full_name": "identity",
    "phone": "contact",
    "language": "language",
    "needs": "needs",
}


# An organization's own rule: the VSP sends no contact details to shelters.
FORBID_CONTACT = """@id("no-contact-to-shelters")
@reason("We do not send contact details to shelters.")
forbid (principal, action == Action::"release", resource)
when { resource.name == "contact" && principal.recipient_sector == "shelter" };
"""


@dataclass
class Kit:
    client: httpx.AsyncClient
    world: World
    keys: dict[str, OrganizationKeys] = field(default_factory=dict)
    subject: str = ""
    consent: dict[str, Any] = field(default_factory=dict)

    def staff(self, org: str, role: Role = Role.caseworker) -> dict[str, str]:
        return self.world.headers(org, role)

    async def register(self, org: str) -> OrganizationKeys:
        keys = generate_organization_keys(str(self.world.orgs[org]))
        r = await self.client.put(
            f"/v1/organizations/{self.world.orgs[org]}/keys",
            json=keys.public_registration(),
            headers=self.world.headers(org, Role.org_admin),
        )
        assert r.status_code == 200, r.text
        self.keys[org] = keys
        # Agreements are countersigned with the current signing key (issue 24).
        self.world.signing_keys[org] = (
            keys.current_signing_key.key_id,
            keys.current_signing_key.seed,
        )
        return keys

    def seal(
        self,
        values: dict[str, str] | None = None,
        *,
        sender: str = "vsp",
        recipient: str = "shelter",
        subject: str | None = None,
        consent_id: str | None = None,
        purpose: str = "services_referral",
        categories: dict[str, str] | None = None,
    ) -> dict[str, object]:
        values = PLANTED if values is None else values
        labels = {**PLANTED_CATEGORIES, **(categories or {})}
        return seal_envelope(
            [PlainField(name=n, category=labels[n], value=v) for n, v in values.items()],
            sender_org=str(self.world.orgs[sender]),
            sender_signing_key=self.keys[sender].current_signing_key.seed,
            recipient_org=str(self.world.orgs[recipient]),
            recipient_encryption_key=self.keys[recipient].current_encryption_key.public_key,
            subject_id=subject or self.subject,
            purpose=purpose,
            consent_id=consent_id or str(self.consent["id"]),
        )

    def body(self, envelope: dict[str, object], **change: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "subject_id": self.subject,
            "recipient_org_id": str(self.world.orgs["shelter"]),
            "consent_id": str(self.consent["id"]),
            "purpose": "services_referral",
            "services_requested": ["emergency_shelter"],
            "urgency": "urgent",
            "envelope": envelope,
        }
        body.update(change)
        return body

    async def send(self, values: dict[str, str] | None = None, **seal: Any) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/referrals", json=self.body(self.seal(values, **seal)), headers=self.staff("vsp")
        )
        assert r.status_code == 201, r.text
        referral: dict[str, Any] = r.json()
        return referral

    async def forbid_contact(self) -> None:
        """The VSP adds FORBID_CONTACT to its own rules."""
        r = await self.client.put(
            f"/v1/organizations/{self.world.orgs['vsp']}/policy",
            json={"cedar": FORBID_CONTACT},
            headers=self.world.headers("vsp", Role.org_admin),
        )
        assert r.status_code == 200, r.text

    async def deliver(self, referral_id: str, org: str = "shelter") -> httpx.Response:
        return await self.client.post(
            f"/v1/referrals/{referral_id}/deliver", headers=self.staff(org)
        )

    async def directory_signing_key(self, org_id: str, key_id: str) -> bytes:
        """The sender's Ed25519 key as the directory publishes it, by key id: never
        a key carried in the delivery."""
        r = await self.client.get(f"/v1/organizations/{org_id}/keys", headers=self.staff("shelter"))
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            if item["kind"] == "signing" and item["key_id"] == key_id:
                return base64.b64decode(item["public_key"])
        raise AssertionError("sender key not in the directory")

    async def open(self, delivery: dict[str, Any], recipient: str = "shelter") -> OpenedEnvelope:
        header = delivery["envelope_header"]
        sender_key = await self.directory_signing_key(
            header["sender_org"], delivery["sender_key_id"]
        )
        return open_delivery(
            delivery,
            recipient_private_key=self.keys[recipient].encryption_private_key(
                header["recipient_key_id"]
            ),
            sender_signing_key=sender_key,
            expected_sender_org=header["sender_org"],
            expected_recipient_org=str(self.world.orgs[recipient]),
        )


async def make_kit(client: httpx.AsyncClient, world: World) -> Kit:
    kit = Kit(client=client, world=world)
    await kit.register("vsp")
    await kit.register("shelter")
    kit.subject, kit.consent = await new_consent(client, world, categories=CATEGORIES)
    return kit


async def secret_bytes(app: Any, referral_id: str) -> list[tuple[str, bool]]:
    """(field name, ciphertext and sealed key both still stored), by name."""
    async with app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(ReferralField).where(ReferralField.referral_id == uuid.UUID(referral_id))
            )
        ).all()
    return sorted((r.name, r.ciphertext is not None and r.sealed_key is not None) for r in rows)
