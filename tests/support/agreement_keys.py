"""Test organizations' signing keys and countersignatures (issue 24): agreements bind
only members that signed them, so the test world registers a signing key for each
organization and signs its collaboration's agreement as each org_admin would, in the
client (accord_client.agreements), through the service's verifying path."""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from accord_client import agreements, crypto
from sqlalchemy import select

from service.auth.principals import Principal, Role
from service.clock import Clock
from service.collaborations import signatures
from service.collaborations.models import AgreementSignature, AgreementVersion
from service.crypto import key_id_for
from service.organizations.models import Organization, OrganizationKey
from service.sectors import Sector

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tests.support.world import World


def admin_of(org_id: uuid.UUID, sector: Sector) -> Principal:
    return Principal(
        subject="test-org-admin", org_id=org_id, sector=sector, roles=frozenset({Role.org_admin})
    )


async def register(
    session: AsyncSession, org_id: uuid.UUID, sector: Sector, clock: Clock
) -> tuple[str, bytes]:
    """Seed fresh keys for the organization in the directory, as a deployment whose
    organizations already registered theirs (no audit entry, no `keys.rotated`
    event: tests that count those see only their own); return (signing key id, seed).
    A test that registers keys through the API rotates these out as usual."""
    del sector  # the same signature as the API path, should a test want to switch
    seed = crypto.generate_ed25519_seed()
    encryption = crypto.x25519_public_key(crypto.generate_x25519_private_key())
    signing = crypto.ed25519_public_key(seed)
    for kind, raw in (("encryption", encryption), ("signing", signing)):
        session.add(
            OrganizationKey(
                id=uuid.uuid4(),
                org_id=org_id,
                kind=kind,
                key_id=key_id_for(raw),
                public_key=raw,
                created_at=clock.now(),
                retired_at=None,
                registered_by="test-fixture",
            )
        )
    await session.flush()
    return key_id_for(signing), seed


async def sign_latest(world: World, collab_id: uuid.UUID, only: Sequence[str] = ()) -> None:
    """Each listed member of the latest version that has not signed it yet signs it."""
    by_id = {org_id: name for name, org_id in world.orgs.items()}
    async with world.app.state.sessionmaker() as session:
        latest = (
            await session.scalars(
                select(AgreementVersion)
                .where(AgreementVersion.collaboration_id == collab_id)
                .order_by(AgreementVersion.version.desc())
                .limit(1)
            )
        ).one()
        done = set(
            (
                await session.scalars(
                    select(AgreementSignature.org_id).where(
                        AgreementSignature.agreement_version_id == latest.id
                    )
                )
            ).all()
        )
        document = signatures.version_document(latest)
        for member in latest.members or []:
            org_id = uuid.UUID(member)
            # An organization a test created itself is named by its id.
            name = by_id.get(org_id, member)
            if org_id in done or (only and name not in only):
                continue
            org = await session.get(Organization, org_id)
            assert org is not None
            if name not in world.signing_keys:
                world.signing_keys[name] = await register(
                    session, org_id, Sector(org.sector), world.clock
                )
            key_id, seed = world.signing_keys[name]
            await signatures.sign(
                session,
                principal=admin_of(org_id, Sector(org.sector)),
                collab_id=collab_id,
                version=latest.version,
                key_id=key_id,
                signature_b64=base64.b64encode(agreements.sign(seed, document)).decode(),
                clock=world.clock,
            )
        await session.commit()


async def propose(world: World, flows: list[dict[str, object]], document: bytes) -> int:
    """The platform admin proposes a new version of the test collaboration; returns it."""
    from service.collaborations import service as collab_service
    from service.collaborations.schemas import AgreementInput
    from tests.support.world import BOOTSTRAP

    assert world.collaboration_id is not None
    now = world.clock.now()
    async with world.app.state.sessionmaker() as session:
        version = await collab_service.amend_agreement(
            session,
            principal=BOOTSTRAP,
            collab_id=world.collaboration_id,
            agreement=AgreementInput.model_validate(
                {
                    "flows": flows,
                    "effective_from": now - timedelta(days=1),
                    "document_sha256": hashlib.sha256(document).hexdigest(),
                }
            ),
            vocabulary=world.app.state.vocabulary,
            clock=world.clock,
        )
        await session.commit()
        return version.version


# B01: bodies that countersign a freshly proposed version, by (collaboration, version).
SIGNABLE: dict[tuple[str, int], dict[str, str]] = {}


async def prepare_signable(world: World) -> None:
    """Propose two versions the VSP has not signed (one per allowed matrix cell) and
    make the VSP's countersignature of each."""
    flows: list[dict[str, object]] = [
        {
            "from_sector": "victim_services",
            "to_sector": "shelter",
            "purposes": ["services_referral"],
            "categories": ["contact"],
        }
    ]
    key_id, seed = world.signing_keys["vsp"]
    for text in (b"b01 v-own", b"b01 v-other"):
        version = await propose(world, flows, text)
        async with world.app.state.sessionmaker() as session:
            row = (
                await session.scalars(
                    select(AgreementVersion).where(
                        AgreementVersion.collaboration_id == world.collaboration_id,
                        AgreementVersion.version == version,
                    )
                )
            ).one()
            document = signatures.version_document(row)
        SIGNABLE[str(world.collaboration_id), version] = agreements.signature_body(
            key_id, seed, document
        )
