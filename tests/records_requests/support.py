"""A records-request kit: the task force's agreement extended to law enforcement and
prosecution, keys for the VSP (holder), the police and the prosecutor (requesters),
and helpers that request, answer with a sealed envelope, deliver and open.

Field values are generated test fixtures."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from accord_client.envelope import OpenedEnvelope, PlainField, open_delivery, seal_envelope
from accord_client.keys import OrganizationKeys, generate_organization_keys

from service.auth.principals import Role
from tests.support.factories import new_consent, new_subject
from tests.support.world import FLOW_CATEGORIES, World

LE_CATEGORIES = ["identity", "contact", "location", "case_summary", "children"]
SENSITIVE = ["substance_use", "counseling_notes", "immigration_status"]
DOC = hashlib.sha256(b"order 2026-CR-0042").hexdigest()
VALUES = {"identity": "Planted Name Ñ", "contact": "+1-555-0142-planted", "location": "Unit 9"}


@dataclass
class RequestKit:
    client: httpx.AsyncClient
    world: World
    keys: dict[str, OrganizationKeys] = field(default_factory=dict)

    def staff(self, org: str, role: Role = Role.caseworker, sub: str = "alice") -> dict[str, str]:
        return self.world.headers(org, role, sub=sub)

    async def register(self, org: str) -> None:
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

    def body(self, **change: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "holder_org_id": str(self.world.orgs["vsp"]),
            "subject_ref": "REF-2026-0042",
            "categories": ["identity", "contact"],
            "purpose": "investigation",
            "legal_basis": "consent",
            "justification": "Witness in a labor trafficking investigation",
        }
        body.update(change)
        return body

    async def request(self, org: str = "police", **change: Any) -> httpx.Response:
        role = Role.prosecutor if org == "prosecutor" else Role.investigator
        return await self.client.post(
            "/v1/records-requests", json=self.body(**change), headers=self.staff(org, role)
        )

    async def made(self, org: str = "police", **change: Any) -> dict[str, Any]:
        r = await self.request(org, **change)
        assert r.status_code == 201, r.text
        made: dict[str, Any] = r.json()
        return made

    def seal(
        self,
        request: dict[str, Any],
        subject: str,
        values: dict[str, str],
        *,
        consent_id: str | None = None,
        requester: str = "police",
    ) -> dict[str, object]:
        return seal_envelope(
            [PlainField(name=c, category=c, value=v) for c, v in values.items()],
            sender_org=str(self.world.orgs["vsp"]),
            sender_signing_key=self.keys["vsp"].current_signing_key.seed,
            recipient_org=str(self.world.orgs[requester]),
            recipient_encryption_key=self.keys[requester].current_encryption_key.public_key,
            subject_id=subject,
            purpose=request["purpose"],
            consent_id=consent_id,
            request_id=request["id"],
        )

    async def respond(
        self,
        request_id: str,
        body: dict[str, Any],
        role: Role = Role.caseworker,
        sub: str = "alice",
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/records-requests/{request_id}/respond",
            json=body,
            headers=self.staff("vsp", role, sub=sub),
        )

    async def deliver(self, request_id: str, org: str = "police") -> httpx.Response:
        role = Role.prosecutor if org == "prosecutor" else Role.investigator
        return await self.client.post(
            f"/v1/records-requests/{request_id}/deliver", headers=self.staff(org, role)
        )

    def open(self, delivery: dict[str, Any], requester: str = "police") -> OpenedEnvelope:
        """The requester opens with the holder's key from its own key file here; the
        client library's receive helpers take it from the directory instead."""
        header = delivery["envelope_header"]
        return open_delivery(
            delivery,
            recipient_private_key=self.keys[requester].encryption_private_key(
                header["recipient_key_id"]
            ),
            sender_signing_key=self.keys["vsp"].current_signing_key.public_key,
            expected_sender_org=str(self.world.orgs["vsp"]),
            expected_recipient_org=str(self.world.orgs[requester]),
        )

    async def subject(self) -> str:
        return await new_subject(self.client, self.world)

    async def consent(self, subject: str, categories: list[str], to: str = "police") -> str:
        _, consent = await new_consent(
            self.client,
            self.world,
            subject=subject,
            categories=categories,
            recipients=[str(self.world.orgs[to])],
            purposes=["investigation"],
        )
        return str(consent["id"])


async def make_request_kit(client: httpx.AsyncClient, world: World) -> RequestKit:
    kit = RequestKit(client=client, world=world)
    flows = [
        {
            "from_sector": "victim_services",
            "to_sector": "shelter",
            "purposes": ["services_referral"],
            "categories": FLOW_CATEGORIES,
        },
        {
            "from_sector": "victim_services",
            "to_sector": "law_enforcement",
            "purposes": ["investigation", "emergency_contact"],
            "categories": LE_CATEGORIES + SENSITIVE,
        },
        {
            "from_sector": "victim_services",
            "to_sector": "prosecution",
            "purposes": ["prosecution", "investigation"],
            "categories": LE_CATEGORIES + SENSITIVE,
        },
    ]
    r = await client.put(
        f"/v1/collaborations/{world.collaboration_id}/agreement",
        json={
            "flows": flows,
            "effective_from": (world.clock.now() - timedelta(days=1)).isoformat(),
            "effective_to": (world.clock.now() + timedelta(days=365)).isoformat(),
            "document_sha256": hashlib.sha256(b"task force mou v2").hexdigest(),
        },
        headers=world.headers("platform", Role.platform_admin),
    )
    assert r.status_code == 200, r.text
    await world.sign_agreement()  # a version binds once its members signed it
    for org in ("vsp", "police", "prosecutor"):
        await kit.register(org)
    return kit
