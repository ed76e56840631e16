"""Who gave a grant, and who can never give one: the alleged-abuser rule
(DESIGN.md section 5: a person named as the abuser can never consent for the survivor).

People are known here only by opaque references that the organization computes
(a keyed SHA-256 whose key it keeps), so the server compares references and
never learns who anyone is.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from service.audit.at_commit import stage
from service.audit.log import AuditEvent
from service.audit.ordering import lock_policy
from service.auth.principals import Principal
from service.clock import Clock
from service.consents.models import AllegedAbuser, ConsentGiver
from service.consents.schemas import AllegedAbuserCreate, ConsentCreate
from service.errors import ProblemItem
from service.subjects.models import Subject
from service.subjects.service import get_owned


async def abuser_refs(session: AsyncSession, subject_id: uuid.UUID) -> frozenset[str]:
    rows = await session.scalars(
        select(AllegedAbuser.person_ref).where(AllegedAbuser.subject_id == subject_id)
    )
    return frozenset(rows.all())


async def check_giver(
    session: AsyncSession, data: ConsentCreate, subject: Subject
) -> list[ProblemItem]:
    """DESIGN.md section 5: a person named as the abuser can never consent for the survivor."""
    if data.giver_ref is None or data.giver_ref not in await abuser_refs(session, subject.id):
        return []
    return [
        ProblemItem(
            "/giver_ref", "the giver is recorded as the subject's alleged abuser and cannot consent"
        )
    ]


async def giver_refs(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.scalars(select(ConsentGiver).where(ConsentGiver.consent_id.in_(ids)))
    return {g.consent_id: g.giver_ref for g in rows.all()}


async def record_alleged_abuser(
    session: AsyncSession,
    *,
    principal: Principal,
    subject_id: uuid.UUID,
    data: AllegedAbuserCreate,
    clock: Clock,
) -> AllegedAbuser:
    """Record a person (by opaque reference) as the subject's alleged abuser. From now
    on they cannot be the giver of a grant for this subject, and grants they already
    gave stop counting at once. Recording the same person again changes nothing.

    A release reads the mark (a grant its giver gave stops counting), so this is a
    change ordered against releases: the policy lock exclusively, first
    (service/audit/ordering.py)."""
    await lock_policy(session)
    subject = await get_owned(session, principal=principal, subject_id=subject_id)
    existing = (
        await session.scalars(
            select(AllegedAbuser).where(
                AllegedAbuser.subject_id == subject.id,
                AllegedAbuser.person_ref == data.person_ref,
            )
        )
    ).first()
    if existing is not None:
        return existing
    row = AllegedAbuser(
        id=uuid.uuid4(),
        subject_id=subject.id,
        person_ref=data.person_ref,
        recorded_by=principal.label,
        recorded_at=clock.now(),
    )
    session.add(row)
    await session.flush()
    # The reference itself stays out of the log: identifiers of the record only.
    await stage(
        session,
        AuditEvent(
            "subject.alleged_abuser_recorded",
            principal,
            subject_ref=str(subject.id),
            details={"record_id": str(row.id)},
        ),
        clock=clock,
    )
    return row
