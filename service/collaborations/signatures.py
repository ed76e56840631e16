"""Countersigning agreement versions and withdrawing signatures (docs/agreements.md).

The service never holds a signing key: a member's org_admin signs in the client
(accord_client.agreements) and the service checks the signature, by a signing key
registered to that organization and current now, over the version's canonical
bytes rebuilt from what is stored. Every signature and withdrawal takes the policy
lock exclusively before it writes (service/audit/ordering.py `lock_head`; on
PostgreSQL the policy-epoch trigger of migration 0210 takes it too), so each
release decision falls wholly before or wholly after it, as with a consent
revocation, and its audit entry carries the signature bytes.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from typing import Any

from accord_client import agreements as canonical
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.audit.ordering import lock_head
from service.auth.authorize import require_own_org
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.collaborations.models import AgreementSignature, AgreementVersion, Membership
from service.errors import ConflictError, NotFoundError, ProblemItem, RuleViolationError
from service.events.catalog import EventType
from service.events.outbox import emit
from service.organizations.models import OrganizationKey


def version_document(version: AgreementVersion) -> dict[str, Any]:
    """The canonical document of a stored version (members and chain recorded)."""
    return canonical.agreement_document(
        collaboration_id=str(version.collaboration_id),
        version=version.version,
        flows=version.flows,
        effective_from=version.effective_from,
        effective_to=version.effective_to,
        document_sha256=version.document_sha256,
        members=version.members or [],
        previous_sha256=version.previous_sha256,
    )


async def _members(session: AsyncSession, collab_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Membership.org_id).where(
            Membership.collaboration_id == collab_id, Membership.removed_at.is_(None)
        )
    )
    return list(rows.all())


async def _member_version(
    session: AsyncSession, principal: Principal, collab_id: uuid.UUID, version: int
) -> AgreementVersion:
    """The version, if the principal's organization is a member now (else 404)."""
    if principal.org_id not in await _members(session, collab_id):
        raise NotFoundError()
    row = (
        await session.scalars(
            select(AgreementVersion).where(
                AgreementVersion.collaboration_id == collab_id,
                AgreementVersion.version == version,
            )
        )
    ).first()
    if row is None:
        raise NotFoundError()
    return row


async def sign(
    session: AsyncSession,
    *,
    principal: Principal,
    collab_id: uuid.UUID,
    version: int,
    key_id: str,
    signature_b64: str,
    clock: Clock,
) -> AgreementSignature:
    """Record the caller's organization's signature of `version`, once verified."""
    require_own_org(principal, principal.org_id, Role.org_admin)  # the role first: 403
    await lock_head(session)  # the policy lock, exclusively, before anything is read
    row = await _member_version(session, principal, collab_id, version)  # else 404
    if row.sha256 is None or row.members is None:
        raise ConflictError("This version predates signatures: propose a new version")
    if str(principal.org_id) not in row.members:
        raise ConflictError("Your organization was not a member when this version was proposed")
    existing = (
        await session.scalars(
            select(AgreementSignature).where(
                AgreementSignature.agreement_version_id == row.id,
                AgreementSignature.org_id == principal.org_id,
            )
        )
    ).first()
    if existing is not None:
        raise ConflictError("Your organization has already signed (or withdrawn from) this version")
    raw = _decode_signature(signature_b64)
    key = (
        await session.scalars(select(OrganizationKey).where(OrganizationKey.key_id == key_id))
    ).first()
    if key is None or key.org_id != principal.org_id or key.kind != "signing":
        raise RuleViolationError(
            errors=[ProblemItem("/key_id", "not a signing key of your organization")]
        )
    if key.retired_at is not None:
        raise RuleViolationError(errors=[ProblemItem("/key_id", "this key is retired")])
    if not canonical.verify(key.public_key, version_document(row), raw):
        raise RuleViolationError(
            errors=[ProblemItem("/signature", "does not verify over this version's bytes")]
        )
    now = clock.now()
    signature = AgreementSignature(
        id=uuid.uuid4(),
        collaboration_id=collab_id,
        agreement_version_id=row.id,
        version=row.version,
        org_id=principal.org_id,
        key_id=key.key_id,
        signature=raw,
        signed_at=now,
        signed_by=principal.label,
        withdrawn_at=None,
        withdrawn_by=None,
    )
    session.add(signature)
    await session.flush()
    details = _details(row, [signature])
    await append(session, AuditEvent("agreement.signed", principal, details=details), clock=clock)
    await emit(
        session,
        kind=EventType.agreement_signed,
        to=await _members(session, collab_id),
        object_type="collaboration",
        object_id=collab_id,
        data={
            "collaboration_id": str(collab_id),
            "agreement_version": row.version,
            "org_id": str(principal.org_id),
            "key_id": key.key_id,
        },
        at=now,
    )
    return signature


def _decode_signature(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 64:
        raise RuleViolationError(
            errors=[ProblemItem("/signature", "64 bytes of Ed25519 signature, standard base64")]
        )
    return raw


def _details(version: AgreementVersion, signatures: Sequence[AgreementSignature]) -> dict[str, Any]:
    return {
        "collaboration_id": str(version.collaboration_id),
        "agreement_version": version.version,
        "agreement_sha256": version.sha256,
        "signatures": [
            {
                "version": s.version,
                "org_id": str(s.org_id),
                "key_id": s.key_id,
                "signature": base64.b64encode(s.signature).decode(),
            }
            for s in signatures
        ],
    }


async def withdraw(
    session: AsyncSession,
    *,
    principal: Principal,
    collab_id: uuid.UUID,
    org_id: uuid.UUID,
    clock: Clock,
) -> list[AgreementSignature]:
    """Withdraw every live signature of the organization in the collaboration: its
    flows end for every later release. Members are told (`agreement.signature_withdrawn`)."""
    require_own_org(principal, org_id, Role.org_admin)
    await lock_head(session)  # ordered against releases like a revocation
    members = await _members(session, collab_id)
    if org_id not in members:
        raise NotFoundError()
    live = list(
        (
            await session.scalars(
                select(AgreementSignature)
                .where(
                    AgreementSignature.collaboration_id == collab_id,
                    AgreementSignature.org_id == org_id,
                    AgreementSignature.withdrawn_at.is_(None),
                )
                .order_by(AgreementSignature.version)
            )
        ).all()
    )
    if not live:
        raise ConflictError("Your organization holds no live signature here")
    now = clock.now()
    for signature in live:
        signature.withdrawn_at = now
        signature.withdrawn_by = principal.label
    await session.flush()
    latest = await session.get(AgreementVersion, live[-1].agreement_version_id)
    assert latest is not None  # noqa: S101 - a foreign key
    await append(
        session,
        AuditEvent("agreement.signature_withdrawn", principal, details=_details(latest, live)),
        clock=clock,
    )
    await emit(
        session,
        kind=EventType.agreement_signature_withdrawn,
        to=members,
        object_type="collaboration",
        object_id=collab_id,
        data={
            "collaboration_id": str(collab_id),
            "org_id": str(org_id),
            "agreement_versions": [s.version for s in live],
            "withdrawn_at": now.isoformat(),
        },
        at=now,
    )
    return live


async def signatures_of(
    session: AsyncSession, version_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AgreementSignature]]:
    if not version_ids:
        return {}
    rows = await session.scalars(
        select(AgreementSignature)
        .where(AgreementSignature.agreement_version_id.in_(version_ids))
        .order_by(AgreementSignature.signed_at, AgreementSignature.org_id)
    )
    out: dict[uuid.UUID, list[AgreementSignature]] = {}
    for row in rows.all():
        out.setdefault(row.agreement_version_id, []).append(row)
    return out
