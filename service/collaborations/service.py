"""Collaborations: agreements (versioned, immutable) and membership (ends at once)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from accord_client import agreements as canonical
from sqlalchemy import Select, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.log import AuditEvent, append
from service.auth.principals import Principal, Role
from service.clock import Clock
from service.collaborations import binding
from service.collaborations.models import (
    AgreementSignature,
    AgreementVersion,
    Collaboration,
    Membership,
)
from service.collaborations.schemas import AgreementInput, CollaborationCreate
from service.collaborations.signatures import version_document
from service.consents import followups
from service.errors import ConflictError, NotFoundError, ProblemItem, RuleViolationError
from service.events.catalog import EventType
from service.events.outbox import emit
from service.organizations.models import Organization
from service.policy.inputs import AgreementFlow
from service.vocabulary import Vocabulary
from service.web.pagination import PageRequest, Position, next_position


def visible_collaborations(principal: Principal) -> Select[Collaboration]:
    """The one place that says which collaborations a principal may see."""
    stmt = select(Collaboration)
    if principal.has_any(Role.platform_admin):
        return stmt
    member = exists().where(
        Membership.collaboration_id == Collaboration.id,
        Membership.org_id == principal.org_id,
        Membership.removed_at.is_(None),
    )
    return stmt.where(member)


def check_agreement(agreement: AgreementInput, vocabulary: Vocabulary) -> list[ProblemItem]:
    problems: list[ProblemItem] = []
    for index, flow in enumerate(agreement.flows):
        base = f"/agreement/flows/{index}"
        problems += vocabulary.check_purposes(f"{base}/purposes", flow.purposes)
        problems += vocabulary.check_categories(f"{base}/categories", flow.categories)
    if agreement.effective_to is not None and agreement.effective_to <= agreement.effective_from:
        problems.append(ProblemItem("/agreement/effective_to", "must be after effective_from"))
    return problems


def _flows_json(agreement: AgreementInput) -> list[dict[str, object]]:
    return [
        {
            "from_sector": f.from_sector.value,
            "to_sector": f.to_sector.value,
            "purposes": list(f.purposes),
            "categories": list(f.categories),
        }
        for f in agreement.flows
    ]


async def create(
    session: AsyncSession,
    *,
    principal: Principal,
    data: CollaborationCreate,
    vocabulary: Vocabulary,
    clock: Clock,
) -> Collaboration:
    """The collaboration, its first members, and version 1 proposed to them."""
    problems = check_agreement(data.agreement, vocabulary)
    if len(set(data.members)) != len(data.members):
        problems.append(ProblemItem("/members", "each organization once"))
    if problems:
        raise RuleViolationError(errors=problems)
    now = clock.now()
    collab = Collaboration(
        id=uuid.uuid4(), name=data.name, created_at=now, created_by=principal.label
    )
    session.add(collab)
    await session.flush()
    for index, org_id in enumerate(data.members):
        await add_member(
            session,
            principal=principal,
            collab_id=collab.id,
            org_id=org_id,
            clock=clock,
            path=f"/members/{index}",
        )
    version = _version(collab.id, 1, data.agreement, principal, now, data.members, None)
    session.add(version)
    await session.flush()
    await append(
        session,
        AuditEvent(
            "collaboration.created",
            principal,
            details={
                "collaboration_id": str(collab.id),
                "agreement_version": 1,
                "agreement_sha256": version.sha256,
            },
        ),
        clock=clock,
    )
    await _announce(session, version, data.members)
    return collab


def _version(
    collab_id: uuid.UUID,
    version: int,
    agreement: AgreementInput,
    principal: Principal,
    now: datetime,
    members: Sequence[uuid.UUID],
    previous_sha256: str | None,
) -> AgreementVersion:
    row = AgreementVersion(
        id=uuid.uuid4(),
        collaboration_id=collab_id,
        version=version,
        flows=_flows_json(agreement),
        effective_from=agreement.effective_from,
        effective_to=agreement.effective_to,
        document_sha256=agreement.document_sha256,
        created_at=now,
        created_by=principal.label,
        members=sorted(str(m) for m in members),
        previous_sha256=previous_sha256,
    )
    row.sha256 = canonical.version_sha256(version_document(row))
    return row


async def _announce(
    session: AsyncSession, version: AgreementVersion, members: Sequence[uuid.UUID]
) -> None:
    await emit(
        session,
        kind=EventType.agreement_proposed,
        to=members,
        object_type="collaboration",
        object_id=version.collaboration_id,
        data={
            "collaboration_id": str(version.collaboration_id),
            "agreement_version": version.version,
            "agreement_sha256": version.sha256 or "",
        },
        at=version.created_at,
    )


async def get_visible(
    session: AsyncSession, *, principal: Principal, collab_id: uuid.UUID
) -> Collaboration:
    collab = (
        await session.scalars(
            visible_collaborations(principal).where(Collaboration.id == collab_id)
        )
    ).first()
    if collab is None:
        raise NotFoundError()
    return collab


async def list_visible(
    session: AsyncSession, *, principal: Principal, page: PageRequest
) -> tuple[list[Collaboration], Position | None]:
    stmt = visible_collaborations(principal)
    if page.after is not None:
        stmt = stmt.where(
            (Collaboration.created_at > page.after.at)
            | ((Collaboration.created_at == page.after.at) & (Collaboration.id > page.after.id))
        )
    stmt = stmt.order_by(Collaboration.created_at, Collaboration.id).limit(page.limit + 1)
    rows = list((await session.scalars(stmt)).all())
    return rows[: page.limit], next_position(rows, page.limit)


async def agreement_versions(
    session: AsyncSession, collab_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AgreementVersion]]:
    if not collab_ids:
        return {}
    stmt = (
        select(AgreementVersion)
        .where(AgreementVersion.collaboration_id.in_(collab_ids))
        .order_by(AgreementVersion.version.desc())
    )
    out: dict[uuid.UUID, list[AgreementVersion]] = {}
    for row in (await session.scalars(stmt)).all():
        out.setdefault(row.collaboration_id, []).append(row)
    return out


async def active_members(
    session: AsyncSession, collab_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Membership]]:
    if not collab_ids:
        return {}
    stmt = (
        select(Membership)
        .where(Membership.collaboration_id.in_(collab_ids), Membership.removed_at.is_(None))
        .order_by(Membership.added_at, Membership.org_id)
    )
    out: dict[uuid.UUID, list[Membership]] = {cid: [] for cid in collab_ids}
    for row in (await session.scalars(stmt)).all():
        out[row.collaboration_id].append(row)
    return out


async def amend_agreement(
    session: AsyncSession,
    *,
    principal: Principal,
    collab_id: uuid.UUID,
    agreement: AgreementInput,
    vocabulary: Vocabulary,
    clock: Clock,
) -> AgreementVersion:
    collab = await get_visible(session, principal=principal, collab_id=collab_id)
    problems = check_agreement(agreement, vocabulary)
    if problems:
        raise RuleViolationError(errors=problems)
    latest = (await agreement_versions(session, [collab.id]))[collab.id][0]
    members = {m.org_id for m in (await active_members(session, [collab.id]))[collab.id]}
    version = _version(
        collab.id,
        latest.version + 1,
        agreement,
        principal,
        clock.now(),
        sorted(members),
        latest.sha256,
    )
    session.add(version)
    await session.flush()
    flagged = await followups.flag_for_review(
        session,
        collaboration_id=collab.id,
        member_ids=members,
        old_flows=latest.flows,
        new_flows=version.flows,
        agreement_version=version.version,
        clock=clock,
    )
    await append(
        session,
        AuditEvent(
            "agreement.changed",
            principal,
            details={
                "collaboration_id": str(collab.id),
                "agreement_version": version.version,
                "agreement_sha256": version.sha256,
                "consents_flagged_for_review": sorted(str(r.grant_id) for r in flagged),
            },
        ),
        clock=clock,
    )
    await _announce(session, version, sorted(members))
    return version


async def add_member(
    session: AsyncSession,
    *,
    principal: Principal,
    collab_id: uuid.UUID,
    org_id: uuid.UUID,
    clock: Clock,
    path: str = "/org_id",
) -> Membership:
    """A new member; it shares under no version until one lists it and it signs."""
    collab = await get_visible(session, principal=principal, collab_id=collab_id)
    org = await session.get(Organization, org_id)
    if org is None or not org.active:
        raise RuleViolationError(errors=[ProblemItem(path, "no such active organization")])
    current = (await active_members(session, [collab.id]))[collab.id]
    if any(m.org_id == org_id for m in current):
        raise ConflictError("The organization is already a member")
    membership = Membership(
        id=uuid.uuid4(),
        collaboration_id=collab.id,
        org_id=org_id,
        added_at=clock.now(),
        added_by=principal.label,
        removed_at=None,
        removed_by=None,
    )
    session.add(membership)
    await session.flush()
    await append(
        session,
        AuditEvent(
            "member.added",
            principal,
            counterpart_org_id=org_id,
            details={"collaboration_id": str(collab.id)},
        ),
        clock=clock,
    )
    return membership


async def remove_member(
    session: AsyncSession,
    *,
    principal: Principal,
    collab_id: uuid.UUID,
    org_id: uuid.UUID,
    clock: Clock,
) -> Membership:
    """Access ends at once: every later decision reads membership afresh."""
    collab = await get_visible(session, principal=principal, collab_id=collab_id)
    current = (await active_members(session, [collab.id]))[collab.id]
    membership = next((m for m in current if m.org_id == org_id), None)
    if membership is None:
        raise NotFoundError()
    membership.removed_at = clock.now()
    membership.removed_by = principal.label
    # Its signatures end with its membership: re-added, it signs again (fail closed).
    await session.execute(
        update(AgreementSignature)
        .where(
            AgreementSignature.collaboration_id == collab.id,
            AgreementSignature.org_id == org_id,
            AgreementSignature.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=membership.removed_at, withdrawn_by=principal.label)
    )
    await session.flush()
    await append(
        session,
        AuditEvent(
            "member.removed",
            principal,
            counterpart_org_id=org_id,
            details={"collaboration_id": str(collab.id)},
        ),
        clock=clock,
    )
    await emit(
        session,
        kind=EventType.member_removed,
        to=[m.org_id for m in current],  # the removed organization and the others
        object_type="collaboration",
        object_id=collab.id,
        data={"collaboration_id": str(collab.id), "org_id": str(org_id)},
        at=membership.removed_at,
    )
    return membership


async def shared_agreement_flows(
    session: AsyncSession, org_a: uuid.UUID, org_b: uuid.UUID
) -> tuple[AgreementFlow, ...]:
    """The flows in force between two organizations (service/collaborations/binding.py:
    of each collaboration both belong to now, the last version both signed)."""
    return await binding.shared_agreement_flows(session, org_a, org_b)
