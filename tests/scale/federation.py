"""A small federation built through the API of a running cluster, as a deployment's
clients would: a platform organization (created in the database, as `accord org
create` does), a victim-service provider and a shelter in one collaboration, each
with registered keys, an oversight organization with an auditor, and helpers to
create subjects, consents and referrals and to export and verify the audit log."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from accord_client.agreements import countersignature
from accord_client.audit_verify import SignedCheckpoint, VerifiedLog, verify_lines
from accord_client.envelope import PlainField, seal_envelope
from accord_client.keys import OrganizationKeys, generate_organization_keys
from sqlalchemy.ext.asyncio import create_async_engine

from service.auth.dev_tokens import issue_dev_token
from service.auth.principals import Role
from service.cli import CLI_PRINCIPAL
from service.clock import SystemClock
from service.crypto import FileSigner
from service.keyring import CHECKPOINT_KEY
from service.organizations import service as org_service
from service.organizations.schemas import OrganizationCreate
from service.sectors import Sector
from service.settings import Settings
from service.storage import make_sessionmaker

CATEGORIES = ["identity", "contact", "needs"]
PURPOSE = "services_referral"


async def platform_org(url: str) -> uuid.UUID:
    """The platform operator's organization, created in the (migrated) database."""
    engine = create_async_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            org = await org_service.create(
                session,
                principal=CLI_PRINCIPAL,
                data=OrganizationCreate(name="Scale platform", sector=Sector.government),
                clock=SystemClock(),
            )
            await session.commit()
            return org.id
    finally:
        await engine.dispose()


@dataclass
class Federation:
    settings: Settings
    base: str
    orgs: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    keys: dict[str, OrganizationKeys] = field(default_factory=dict)

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def token(self, org: str, role: Role, sub: str) -> str:
        return issue_dev_token(
            self.settings,
            clock=SystemClock(),
            org_id=uuid.UUID(self.orgs[org]),
            roles=[role],
            sub=sub,
        )

    async def post(
        self, path: str, body: object, who: str, *, ok: int = 201, base: str | None = None
    ) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=base or self.base, timeout=30) as client:
            r = await client.post(path, json=body, headers=self.headers(who))
        assert r.status_code == ok, (path, r.status_code, r.text)
        data: dict[str, Any] = r.json()
        return data

    async def subject(self, base: str | None = None) -> str:
        return str((await self.post("/v1/subjects", {}, "vsp", base=base))["id"])

    async def consent(self, subject: str, base: str | None = None) -> str:
        body = {
            "recipients": [self.orgs["shelter"]],
            "purposes": [PURPOSE],
            "categories": CATEGORIES,
            "expires_at": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
            "method": "written",
            "language": "en",
            "evidence_sha256": "cd" * 32,
        }
        path = f"/v1/subjects/{subject}/consents"
        return str((await self.post(path, body, "vsp", base=base))["id"])

    def referral_body(self, subject: str, consent: str) -> dict[str, Any]:
        fields = [
            PlainField(name=f"field_{i}", category=CATEGORIES[i % 3], value=f"value {i}")
            for i in range(3)
        ]
        envelope = seal_envelope(
            fields,
            sender_org=self.orgs["vsp"],
            sender_signing_key=self.keys["vsp"].current_signing_key.seed,
            recipient_org=self.orgs["shelter"],
            recipient_encryption_key=self.keys["shelter"].current_encryption_key.public_key,
            subject_id=subject,
            purpose=PURPOSE,
            consent_id=consent,
        )
        return {
            "subject_id": subject,
            "recipient_org_id": self.orgs["shelter"],
            "consent_id": consent,
            "purpose": PURPOSE,
            "services_requested": ["emergency_shelter"],
            "urgency": "urgent",
            "envelope": envelope,
        }

    async def referral(self, subject: str, consent: str, base: str | None = None) -> str:
        body = self.referral_body(subject, consent)
        return str((await self.post("/v1/referrals", body, "vsp", base=base))["id"])

    async def export(self) -> list[bytes]:
        async with httpx.AsyncClient(base_url=self.base, timeout=120) as client:
            r = await client.get("/v1/audit/export", headers=self.headers("auditor"))
        assert r.status_code == 200, r.text
        return [line for line in r.content.split(b"\n") if line]

    def verify(
        self, lines: list[bytes], older: list[SignedCheckpoint] | None = None
    ) -> VerifiedLog:
        """The client's offline verifier, with the checkpoint key read from the key
        directory (not from the service)."""
        return verify_lines(
            lines,
            public_key=self.checkpoint_key(),
            origin=self.settings.audit_origin,
            older=older or [],
            require_end=True,
        )

    def checkpoint_key(self) -> bytes:
        return FileSigner.load(self.settings.key_dir / CHECKPOINT_KEY).public_key


def entries(lines: list[bytes]) -> list[dict[str, Any]]:
    """The entries of an export (every line but the last, the checkpoint)."""
    return [json.loads(line) for line in lines[:-1]]


async def build(settings: Settings, base: str) -> Federation:
    """Organizations, collaboration, keys and tokens through the API at `base`."""
    fed = Federation(settings, base)
    fed.orgs["platform"] = str(await platform_org(settings.database_url))
    fed.tokens["admin"] = fed.token("platform", Role.platform_admin, "scale-admin")
    sectors = {"vsp": "victim_services", "shelter": "shelter", "oversight": "oversight"}
    for name, sector in sectors.items():
        org = await fed.post(
            "/v1/organizations", {"name": f"Scale {name}", "sector": sector}, "admin"
        )
        fed.orgs[name] = str(org["id"])
    now = datetime.now(UTC)
    flow = {
        "from_sector": "victim_services",
        "to_sector": "shelter",
        "purposes": [PURPOSE],
        "categories": CATEGORIES,
    }
    agreement = {
        "flows": [flow],
        "effective_from": (now - timedelta(days=1)).isoformat(),
        "document_sha256": "ab" * 32,
    }
    members = [fed.orgs["vsp"], fed.orgs["shelter"]]
    body = {"name": "Scale task force", "agreement": agreement, "members": members}
    collab = str((await fed.post("/v1/collaborations", body, "admin"))["id"])
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for org in ("vsp", "shelter"):
            fed.tokens[org] = fed.token(org, Role.caseworker, f"scale-{org}")
            fed.tokens[f"{org}_admin"] = fed.token(org, Role.org_admin, f"scale-{org}-admin")
            fed.keys[org] = generate_organization_keys(fed.orgs[org])
            r = await client.put(
                f"/v1/organizations/{fed.orgs[org]}/keys",
                json=fed.keys[org].public_registration(),
                headers=fed.headers(f"{org}_admin"),
            )
            assert r.status_code == 200, r.text
        # An agreement binds the members that countersigned it (docs/agreements.md).
        r = await client.get(
            f"/v1/collaborations/{collab}/agreements", headers=fed.headers("admin")
        )
        assert r.status_code == 200, r.text
        latest = r.json()["items"][0]
        for org in ("vsp", "shelter"):
            signing = fed.keys[org].current_signing_key
            body = countersignature(collab, latest, signing.key_id, signing.seed)
            await fed.post(
                f"/v1/collaborations/{collab}/agreements/signatures", body, f"{org}_admin"
            )
    fed.tokens["auditor"] = fed.token("oversight", Role.auditor, "scale-auditor")
    return fed
