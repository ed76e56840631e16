"""Subjects: created by the serving organization, visible only to its staff."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit import service as audit_service
from service.audit.log import AuditEvent, append
from service.audit.models import AuditEntry
from service.auth.principals import Principal
from service.clock import Clock
from service.errors import NotFoundError
from service.organizations.models import Organization
from service.subjects.models import Subject
from service.subjects.schemas import SubjectCreate


def visible_subjects(principal: Principal) -> Select[Subject]:
    return select(Subject).where(Subject.owner_org_id == principal.org_id)


async def create(
    session: AsyncSession, *, principal: Principal, data: SubjectCreate, clock: Clock
) -> Subject:
    subject = Subject(
        id=uuid.uuid4(),
        owner_org_id=principal.org_id,
        is_minor=data.is_minor,
        created_at=clock.now(),
        created_by=principal.label,
    )
    session.add(subject)
    await session.flush()
    await append(
        session, AuditEvent("subject.created", principal, subject_ref=str(subject.id)), clock=clock
    )
    return subject


async def get_owned(
    session: AsyncSession, *, principal: Principal, subject_id: uuid.UUID
) -> Subject:
    subject = (
        await session.scalars(visible_subjects(principal).where(Subject.id == subject_id))
    ).first()
    if subject is None:
        raise NotFoundError()
    return subject


async def disclosures(
    session: AsyncSession, *, principal: Principal, subject_id: uuid.UUID
) -> tuple[Subject, list[tuple[AuditEntry, Organization | None]]]:
    """The accounting of disclosures for a subject the principal's organization owns."""
    subject = await get_owned(session, principal=principal, subject_id=subject_id)
    entries = await audit_service.subject_disclosures(session, str(subject.id))
    orgs = {
        org.id: org
        for org in (
            await session.scalars(
                select(Organization).where(
                    Organization.id.in_(
                        {e.counterpart_org_id for e in entries if e.counterpart_org_id}
                    )
                )
            )
        ).all()
    }
    return subject, [
        (e, orgs.get(e.counterpart_org_id) if e.counterpart_org_id else None) for e in entries
    ]
