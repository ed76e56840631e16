"""Subjects: created by the serving organization, visible only to its staff."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit import service as audit_service
from service.audit.at_commit import stage
from service.audit.log import AuditEvent, disclosure_recipient
from service.audit.models import AuditEntry
from service.auth.principals import Principal, SurvivorPrincipal
from service.clock import Clock
from service.errors import NotFoundError
from service.organizations import visibility
from service.organizations.models import Organization
from service.subjects.models import AccountingSuspension, Subject
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
    await stage(
        session, AuditEvent("subject.created", principal, subject_ref=str(subject.id)), clock=clock
    )
    return subject


async def get_owned(
    session: AsyncSession, *, principal: Principal, subject_id: uuid.UUID, share: bool = False
) -> Subject:
    """The principal's organization's subject, or 404. `share=True` reads it FOR SHARE
    (PostgreSQL): a creation that takes no other lock first (a consent, an access
    link) then waits for an erasure in progress and sees its mark
    (service/audit/ordering.py: a subject row comes before every other lock)."""
    query = visible_subjects(principal).where(Subject.id == subject_id)
    if share:
        query = query.with_for_update(read=True)
    subject = (await session.scalars(query)).first()
    if subject is None:
        raise NotFoundError()
    return subject


async def disclosures(
    session: AsyncSession,
    *,
    who: Principal | SurvivorPrincipal,
    subject_id: uuid.UUID,
    at: datetime,
    pseudonyms: bytes | None = None,
) -> tuple[Subject, list[tuple[AuditEntry, uuid.UUID | None, Organization | None]]]:
    """The accounting of disclosures, for the owner's staff or the survivor: each
    entry with its recipient's id and directory record. Disclosures of a records
    request under a law enforcement agency's suspension are left out until the
    suspension ends (docs/law-enforcement.md). A confidential recipient the owner no
    longer shares a collaboration with is a stand-in with its opaque id (with the
    `pseudonyms` key; without one, no id: service/organizations/visibility.py)."""
    subject = await resolve_subject(session, who=who, subject_id=subject_id)
    entries = await audit_service.subject_disclosures(session, str(subject.id))
    by_request: dict[int, uuid.UUID | None] = {}
    for entry in entries:
        request_id = json.loads(entry.body).get("details", {}).get("request_id")
        by_request[entry.seq] = uuid.UUID(request_id) if isinstance(request_id, str) else None
    suspended = await suspended_requests(
        session, {r for r in by_request.values() if r is not None}, at
    )
    entries = [e for e in entries if by_request[e.seq] not in suspended]
    recipients = [disclosure_recipient(e) for e in entries]
    wanted = {r for r in recipients if r is not None}
    orgs = {
        org.id: org
        for org in (
            await session.scalars(select(Organization).where(Organization.id.in_(wanted)))
        ).all()
    }
    viewer = visibility.Viewer(
        subject.owner_org_id, who.sector if isinstance(who, Principal) else None
    )
    shown: dict[uuid.UUID | None, uuid.UUID | None] = {r: r for r in recipients}
    for hidden in await visibility.hidden_among(session, viewer, orgs):
        shown[hidden] = visibility.opaque_id(pseudonyms, viewer, hidden) if pseudonyms else None
        orgs[hidden] = visibility.masked(orgs[hidden], shown[hidden])
    return subject, [
        (e, shown[r], orgs.get(r) if r else None) for e, r in zip(entries, recipients, strict=True)
    ]


async def suspended_requests(
    session: AsyncSession, request_ids: set[uuid.UUID], at: datetime
) -> set[uuid.UUID]:
    """The records requests among these whose disclosures are withheld from the
    accounting at `at` (a suspension ends by itself at its `until`)."""
    if not request_ids:
        return set()
    rows = await session.scalars(
        select(AccountingSuspension.request_id).where(
            AccountingSuspension.request_id.in_(list(request_ids)),
            AccountingSuspension.until > at,
        )
    )
    return set(rows.all())


async def resolve_subject(
    session: AsyncSession, *, who: Principal | SurvivorPrincipal, subject_id: uuid.UUID
) -> Subject:
    """The subject, if `who` may see it: the owner's staff, or the survivor's own
    access token (bound to this one subject of this one organization). 404 otherwise."""
    if isinstance(who, Principal):
        return await get_owned(session, principal=who, subject_id=subject_id)
    subject = await session.get(Subject, subject_id)
    if subject is None or subject.id != who.subject_id or subject.owner_org_id != who.org_id:
        raise NotFoundError()
    return subject


async def record_link_use(
    session: AsyncSession, *, who: Principal | SurvivorPrincipal, what: str, clock: Clock
) -> None:
    """Every use of a survivor access link is audited (issue 5)."""
    if isinstance(who, SurvivorPrincipal):
        await stage(
            session,
            AuditEvent(
                "access_link.used",
                None,
                actor_label=who.label,
                subject_ref=str(who.subject_id),
                # The owner's auditors see every use of its links.
                counterpart_org_id=who.org_id,
                details={"what": what},
            ),
            clock=clock,
        )
